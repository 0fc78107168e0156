-- name: drops
-- description: Pairs dropped per reason (ties, empty texts, filters, held-out, extremes...) from every pairs and bucket manifest
-- param: kind = NULL  pairs or buckets (NULL: both)
-- param: name = NULL  restrict to one dataset or bucket set (NULL: all)
-- columns: kind, name, version, reason, pairs
SELECT kind, name, version, reason, pairs
FROM drops
WHERE ($kind IS NULL OR kind = $kind) AND ($name IS NULL OR name = $name)
ORDER BY kind, name, CAST(substr(version, 2) AS INTEGER), pairs DESC, reason;
