-- LOMS's Stocks query (sql/loms/queries/stocks.sql, ListAvailableStocks) for a
-- random sku. Run with -M prepared and -D nskus=N.
\set sku random(1, :nskus)
SELECT warehouse_id, (total - reserved)::bigint AS available FROM stocks
WHERE sku = :sku AND total > reserved
ORDER BY warehouse_id;
