package catalog

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest product name, in characters.
const MaxNameLen = 200

// ErrNoProducts means an import file holds no product rows.
var ErrNoProducts = errors.New("the file holds no products")

// LineError is one rejected line of an import file.
type LineError struct {
	// Line is the 1-based line number the record starts on.
	Line int
	// Reason says what is wrong with it; several problems are joined by
	// "; ".
	Reason string
}

// ImportError lists every rejected line of an import file in line order,
// so that one round of fixes can cover them all.
type ImportError struct {
	Lines []LineError
}

// shownLines is how many bad lines Error lists before summing up the rest:
// enough to see the pattern, short enough for a terminal.
const shownLines = 20

// Error names the number of bad lines, then one per text line the first
// ones with their reasons, then how many more there are.
func (e *ImportError) Error() string {
	var b strings.Builder
	n := len(e.Lines)
	if n == 1 {
		b.WriteString("1 bad line:")
	} else {
		fmt.Fprintf(&b, "%d bad lines:", n)
	}
	for _, l := range e.Lines[:min(n, shownLines)] {
		fmt.Fprintf(&b, "\n  line %d: %s", l.Line, l.Reason)
	}
	if n > shownLines {
		fmt.Fprintf(&b, "\n  and %d more", n-shownLines)
	}
	return b.String()
}

// ParseCSV reads an import file: one product per record, columns sku, name
// and price, with an optional header row "sku,name,price" (any case). It
// checks every record and returns either all products, in file order, or an
// *ImportError listing every bad line, so that a file is loaded whole or
// not at all. A file without products is ErrNoProducts; a read failure is
// returned as is.
func ParseCSV(r io.Reader) ([]Product, error) {
	cr := csv.NewReader(r)
	// Field counts are checked per record below, so that a short line is
	// reported with the others instead of stopping the reader's checks.
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var (
		products []Product
		bad      []LineError
		firstOn  = map[uint32]int{} // sku -> the line it first appeared on
		first    = true
	)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			// The reader resumes at the next line: report and go on.
			bad = append(bad, LineError{Line: pe.StartLine, Reason: "invalid CSV: " + pe.Err.Error()})
			first = false
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read CSV: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if first {
			first = false
			// Spreadsheets often start UTF-8 files with a byte order mark.
			rec[0] = strings.TrimPrefix(rec[0], "\ufeff")
			if isHeader(rec) {
				continue
			}
		}
		p, reasons := parseRecord(rec)
		if p.SKU != 0 {
			if prev, dup := firstOn[p.SKU]; dup {
				reasons = append(reasons, fmt.Sprintf("sku %d already on line %d", p.SKU, prev))
			} else {
				firstOn[p.SKU] = line
			}
		}
		if len(reasons) > 0 {
			bad = append(bad, LineError{Line: line, Reason: strings.Join(reasons, "; ")})
			continue
		}
		if len(bad) == 0 {
			// Once a line is bad nothing will be loaded: stop collecting.
			products = append(products, p)
		}
	}
	if len(bad) > 0 {
		return nil, &ImportError{Lines: bad}
	}
	if len(products) == 0 {
		return nil, ErrNoProducts
	}
	return products, nil
}

func isHeader(rec []string) bool {
	want := []string{"sku", "name", "price"}
	if len(rec) != len(want) {
		return false
	}
	for i, f := range rec {
		if !strings.EqualFold(strings.TrimSpace(f), want[i]) {
			return false
		}
	}
	return true
}

// parseRecord checks one record. It returns the product, with SKU set
// whenever the sku column is valid (for the duplicate check), and every
// problem found.
func parseRecord(rec []string) (Product, []string) {
	if len(rec) != 3 {
		return Product{}, []string{fmt.Sprintf("want 3 fields (sku,name,price), got %d", len(rec))}
	}
	var (
		p       Product
		reasons []string
	)
	if sku, err := strconv.ParseUint(strings.TrimSpace(rec[0]), 10, 32); err != nil || sku == 0 {
		reasons = append(reasons, fmt.Sprintf("sku %s is not an integer from 1 to %d", quote(rec[0]), uint32(math.MaxUint32)))
	} else {
		p.SKU = uint32(sku)
	}
	name, problem := parseName(rec[1])
	if problem != "" {
		reasons = append(reasons, problem)
	}
	p.Name = name
	if price, err := strconv.ParseUint(strings.TrimSpace(rec[2]), 10, 32); err != nil {
		reasons = append(reasons, fmt.Sprintf("price %s is not an integer from 0 to %d", quote(rec[2]), uint32(math.MaxUint32)))
	} else {
		p.Price = uint32(price)
	}
	return p, reasons
}

// parseName trims a name and checks it; the second result is the problem,
// if any.
func parseName(s string) (string, string) {
	if !utf8.ValidString(s) {
		return "", "name is not valid UTF-8"
	}
	s = strings.TrimSpace(s)
	switch n := utf8.RuneCountInString(s); {
	case n == 0:
		return "", "name is empty"
	case n > MaxNameLen:
		return "", fmt.Sprintf("name is %d characters long, at most %d allowed", n, MaxNameLen)
	}
	// A line break or other control character would break every display of
	// the name (tables, logs, the storefront).
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", "name contains a control character"
	}
	return s, ""
}

// quote quotes a bad value for a reason, shortened so that a stray blob in
// a numeric column does not flood the report.
func quote(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) > max {
		return strconv.Quote(string([]rune(s)[:max])) + "..."
	}
	return strconv.Quote(s)
}
