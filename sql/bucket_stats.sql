-- name: bucket_stats
-- description: Per bucket: pairs, prompts, sources and statistics of the bucketing signal (latest version of each bucket set)
-- param: name = NULL  restrict to one bucket set (NULL: all)
-- columns: name, version, bucket, pairs, prompts, sources, signal_nulls, min_value, p25_value, median_value, mean_value, p75_value, max_value
SELECT
    name,
    version,
    bucket,
    count(*) AS pairs,
    count(DISTINCT prompt_id) AS prompts,
    count(DISTINCT source) AS sources,
    count(*) - count(signal_value) AS signal_nulls,
    round(min(signal_value), 4) AS min_value,
    round(quantile_cont(signal_value, 0.25), 4) AS p25_value,
    round(median(signal_value), 4) AS median_value,
    round(avg(signal_value), 4) AS mean_value,
    round(quantile_cont(signal_value, 0.75), 4) AS p75_value,
    round(max(signal_value), 4) AS max_value
FROM buckets
WHERE $name IS NULL OR name = $name
GROUP BY name, version, bucket
ORDER BY name, bucket;
