-- name: signal_correlation
-- description: Pearson and Spearman (rank) correlation between two signal columns, per dataset (pairs with both values)
-- param: a = 'score_gap_v1__gap'  first signal column
-- param: b = 'logprob_margin_v1__margin'  second signal column
-- param: dataset = NULL  restrict to one dataset (NULL: all)
-- columns: dataset, signal_a, signal_b, pairs, pearson, spearman
-- Columns are chosen by name at run time, so the wide `scores` view is unpivoted to (column, value) rows;
-- booleans count as 1/0.
WITH long AS (
    -- `_none_` keeps UNPIVOT valid on a store with no signal yet (NULLs are not unpivoted)
    UNPIVOT (SELECT dataset, pair_id, NULL::VARCHAR AS _none_, COLUMNS(* EXCLUDE (dataset, pair_id))::VARCHAR FROM scores)
    ON COLUMNS(* EXCLUDE (dataset, pair_id)) INTO NAME col VALUE v
),
num AS (
    SELECT dataset, pair_id, col,
           CASE v WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 ELSE try_cast(v AS DOUBLE) END AS x
    FROM long
    WHERE col IN ($a, $b) AND ($dataset IS NULL OR dataset = $dataset)
),
both_ AS (
    SELECT a.dataset, a.x AS x, b.x AS y
    FROM num a JOIN num b USING (dataset, pair_id)
    WHERE a.col = $a AND b.col = $b AND a.x IS NOT NULL AND b.x IS NOT NULL
),
ranked AS (
    SELECT dataset, x, y,
           rank() OVER (PARTITION BY dataset ORDER BY x) + (count(*) OVER (PARTITION BY dataset, x) - 1) / 2.0 AS rx,
           rank() OVER (PARTITION BY dataset ORDER BY y) + (count(*) OVER (PARTITION BY dataset, y) - 1) / 2.0 AS ry
    FROM both_
)
SELECT
    dataset,
    $a AS signal_a,
    $b AS signal_b,
    count(*) AS pairs,
    round(corr(x, y), 4) AS pearson,
    round(corr(rx, ry), 4) AS spearman
FROM ranked
GROUP BY dataset
ORDER BY dataset;
