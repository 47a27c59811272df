package catalog_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/minizon/minizon/services/product/catalog"
)

func TestParseCSVAcceptsGoodFiles(t *testing.T) {
	t.Parallel()
	want := []catalog.Product{{SKU: 1, Name: "Desk Lamp", Price: 100}, {SKU: 4294967295, Name: "Lamp, large", Price: 0}}
	long := strings.Repeat("é", catalog.MaxNameLen)
	for _, tc := range []struct {
		name, file string
		want       []catalog.Product
	}{
		{"no header", "1,Desk Lamp,100\n4294967295,\"Lamp, large\",0\n", want},
		{"header", "sku,name,price\n1,Desk Lamp,100\n4294967295,\"Lamp, large\",0\n", want},
		{"header in any case, spaced", " SKU , Name,PRICE\n1,Desk Lamp,100\n4294967295,\"Lamp, large\",0", want},
		{"byte order mark and CRLF", "\ufeffsku,name,price\r\n1,Desk Lamp,100\r\n4294967295,\"Lamp, large\",0\r\n", want},
		{"blank lines and padding", "\n 1 ,  Desk Lamp  , 100 \n\n4294967295,\"Lamp, large\",0\n\n", want},
		{"leading zeros", "0001,Desk Lamp,0100\n4294967295,\"Lamp, large\",00\n", want},
		{"longest name in characters", "7," + long + ",5\n", []catalog.Product{{SKU: 7, Name: long, Price: 5}}},
		{"quotes in a quoted name", `9,"5"" Monitor",1` + "\n", []catalog.Product{{SKU: 9, Name: `5" Monitor`, Price: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := catalog.ParseCSV(strings.NewReader(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseCSVRejectsEachKindOfBadLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, line string
		reason     string // a part of the line's reason
	}{
		{"sku 0", "0,Lamp,1", `sku "0" is not an integer from 1 to 4294967295`},
		{"negative sku", "-5,Lamp,1", `sku "-5"`},
		{"sku above uint32", "4294967296,Lamp,1", `sku "4294967296"`},
		{"sku not a number", "abc,Lamp,1", `sku "abc"`},
		{"sku empty", ",Lamp,1", `sku ""`},
		{"sku a fraction", "1.0,Lamp,1", `sku "1.0"`},
		{"name empty", "1,,1", "name is empty"},
		{"name blank", "1,   ,1", "name is empty"},
		{"name too long", "1," + strings.Repeat("a", catalog.MaxNameLen+1) + ",1", "name is 201 characters long, at most 200 allowed"},
		{"name not UTF-8", "1,L\xffmp,1", "name is not valid UTF-8"},
		{"name with a line break", "1,\"Desk\nLamp\",1", "name contains a control character"},
		{"name with a tab", "1,Desk\tLamp,1", "name contains a control character"},
		{"price negative", "1,Lamp,-1", `price "-1" is not an integer from 0 to 4294967295`},
		{"price a fraction", "1,Lamp,1.50", `price "1.50"`},
		{"price above uint32", "1,Lamp,4294967296", `price "4294967296"`},
		{"price empty", "1,Lamp,", `price ""`},
		{"two fields", "1,Lamp", "want 3 fields (sku,name,price), got 2"},
		{"four fields", "1,Lamp,1,extra", "want 3 fields (sku,name,price), got 4"},
		{"semicolons", "1;Lamp;1", "want 3 fields (sku,name,price), got 1"},
		{"bare quote", `1,5" Monitor,1`, `invalid CSV: bare " in non-quoted-field`},
		{"stray quote after a quoted field", `1,"Lamp"x,1`, `invalid CSV: extraneous or missing " in quoted-field`},
		{"wrong header", "sku,title,price", `sku "sku" is not an integer`},
		{"long junk is shortened", strings.Repeat("9", 100) + ",Lamp,1", `sku "` + strings.Repeat("9", 40) + `"...`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := "10,Good Lamp,5\n" + tc.line + "\n11,Good Lamp,5\n"
			got, err := catalog.ParseCSV(strings.NewReader(file))
			var ie *catalog.ImportError
			if !errors.As(err, &ie) {
				t.Fatalf("got %+v, %v; want an *ImportError", got, err)
			}
			if got != nil {
				t.Fatalf("products %+v returned with the error", got)
			}
			if len(ie.Lines) != 1 || ie.Lines[0].Line != 2 || !strings.Contains(ie.Lines[0].Reason, tc.reason) {
				t.Fatalf("bad lines %+v, want line 2 with %q", ie.Lines, tc.reason)
			}
		})
	}
}

func TestParseCSVReportsEveryBadLine(t *testing.T) {
	t.Parallel()
	file := strings.Join([]string{
		"sku,name,price",  // 1
		"1,Lamp,10",       // 2
		"2,,20",           // 3 empty name
		"",                // 4 blank, skipped
		"3,Mug,thirty",    // 5 bad price
		"1,Lamp again,10", // 6 duplicate of line 2
		"x,,-1",           // 7 three problems at once
		`4,"Multi`,        // 8 a quoted name over two lines
		`line Chair",40`,  // 9
		"5,Vase",          // 10 short
		"3,Mug,30",        // 11 duplicate of line 5, whose sku was valid
		"6,Rug,60",        // 12
		`7,"unterminated,70`,
		"8,Never seen,80", // swallowed by the open quote above
	}, "\n")
	_, err := catalog.ParseCSV(strings.NewReader(file))
	var ie *catalog.ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("got %v, want an *ImportError", err)
	}
	want := []catalog.LineError{
		{Line: 3, Reason: "name is empty"},
		{Line: 5, Reason: `price "thirty" is not an integer from 0 to 4294967295`},
		{Line: 6, Reason: "sku 1 already on line 2"},
		{Line: 7, Reason: `sku "x" is not an integer from 1 to 4294967295; name is empty; price "-1" is not an integer from 0 to 4294967295`},
		{Line: 8, Reason: "name contains a control character"},
		{Line: 10, Reason: "want 3 fields (sku,name,price), got 2"},
		{Line: 11, Reason: "sku 3 already on line 5"},
		{Line: 13, Reason: `invalid CSV: extraneous or missing " in quoted-field`},
	}
	if !reflect.DeepEqual(ie.Lines, want) {
		t.Fatalf("bad lines\n%+v\nwant\n%+v", ie.Lines, want)
	}
}

func TestImportErrorListsTheFirstLinesAndCountsTheRest(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := range 25 {
		fmt.Fprintf(&b, "%d,,1\n", i+1)
	}
	_, err := catalog.ParseCSV(strings.NewReader(b.String()))
	msg := err.Error()
	if !strings.HasPrefix(msg, "25 bad lines:\n  line 1: name is empty\n") ||
		!strings.Contains(msg, "\n  line 20: name is empty\n  and 5 more") || strings.Contains(msg, "line 21") {
		t.Fatalf("message:\n%s", msg)
	}
	one := &catalog.ImportError{Lines: []catalog.LineError{{Line: 4, Reason: "name is empty"}}}
	if got := one.Error(); got != "1 bad line:\n  line 4: name is empty" {
		t.Fatalf("message %q", got)
	}
}

func TestParseCSVWithoutProductsIsAnError(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"", "\n\n", "sku,name,price\n", "\ufeffSKU,NAME,PRICE\r\n\r\n"} {
		if got, err := catalog.ParseCSV(strings.NewReader(file)); !errors.Is(err, catalog.ErrNoProducts) {
			t.Fatalf("%q: got %+v, %v; want ErrNoProducts", file, got, err)
		}
	}
}

func TestParseCSVReturnsReadErrors(t *testing.T) {
	t.Parallel()
	broken := errors.New("disk gone")
	_, err := catalog.ParseCSV(iotest.ErrReader(broken))
	var ie *catalog.ImportError
	if !errors.Is(err, broken) || errors.As(err, &ie) {
		t.Fatalf("got %v, want the read error", err)
	}
}
