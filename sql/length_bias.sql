-- name: length_bias
-- description: Length bias per bucket: mean chosen and rejected length in characters, their difference, share of pairs whose chosen answer is longer
-- param: name = NULL  restrict to one bucket set (NULL: all)
-- columns: name, version, bucket, pairs, mean_chosen_chars, mean_rejected_chars, mean_diff_chars, share_chosen_longer
SELECT
    name,
    version,
    bucket,
    count(*) AS pairs,
    round(avg(length(chosen)), 1) AS mean_chosen_chars,
    round(avg(length(rejected)), 1) AS mean_rejected_chars,
    round(avg(length(chosen) - length(rejected)), 1) AS mean_diff_chars,
    round(avg(CASE WHEN length(chosen) > length(rejected) THEN 1.0 ELSE 0.0 END), 4) AS share_chosen_longer
FROM buckets
WHERE $name IS NULL OR name = $name
GROUP BY name, version, bucket
ORDER BY name, bucket;
