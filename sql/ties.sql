-- name: ties
-- description: Ties and unrated pairs still in the data, per dataset and source (builders drop ties by default; see `drops` for what they dropped)
-- param: dataset = NULL  restrict to one dataset (NULL: all)
-- columns: dataset, source, pairs, ties, tie_share, unrated
SELECT
    dataset,
    source,
    count(*) AS pairs,
    count(*) FILTER (WHERE chosen_score = rejected_score) AS ties,
    round(count(*) FILTER (WHERE chosen_score = rejected_score) / count(*), 4) AS tie_share,
    count(*) FILTER (WHERE chosen_score IS NULL OR rejected_score IS NULL) AS unrated
FROM pairs
WHERE $dataset IS NULL OR dataset = $dataset
GROUP BY dataset, source
ORDER BY dataset, source;
