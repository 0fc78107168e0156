-- name: overview
-- description: Pairs, prompts, sources and score statistics per dataset (latest versions)
-- param: dataset = NULL  restrict to one dataset (NULL: all)
-- columns: dataset, pairs, prompts, sources, mean_chosen_score, mean_rejected_score, mean_gap, mean_chosen_chars, mean_rejected_chars
SELECT
    dataset,
    count(*) AS pairs,
    count(DISTINCT prompt_id) AS prompts,
    count(DISTINCT source) AS sources,
    round(avg(chosen_score), 3) AS mean_chosen_score,
    round(avg(rejected_score), 3) AS mean_rejected_score,
    round(avg(chosen_score - rejected_score), 3) AS mean_gap,
    round(avg(length(chosen)), 1) AS mean_chosen_chars,
    round(avg(length(rejected)), 1) AS mean_rejected_chars
FROM pairs
WHERE $dataset IS NULL OR dataset = $dataset
GROUP BY dataset
ORDER BY dataset;
