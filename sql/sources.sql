-- name: sources
-- description: Pair counts and mean score gap per data source
-- param: dataset = NULL  restrict to one dataset (NULL: all)
-- columns: dataset, source, pairs, prompts, mean_gap
SELECT
    dataset,
    source,
    count(*) AS pairs,
    count(DISTINCT prompt_id) AS prompts,
    round(avg(chosen_score - rejected_score), 3) AS mean_gap
FROM pairs
WHERE $dataset IS NULL OR dataset = $dataset
GROUP BY dataset, source
ORDER BY dataset, pairs DESC, source;
