-- name: bucket_sources
-- description: Per bucket and data source: pairs, share of the bucket, mean score gap and mean bucketing value
-- param: name = NULL  restrict to one bucket set (NULL: all)
-- columns: name, version, bucket, source, pairs, share_of_bucket, mean_gap, mean_value
SELECT
    name,
    version,
    bucket,
    source,
    count(*) AS pairs,
    round(count(*) / sum(count(*)) OVER (PARTITION BY name, bucket), 4) AS share_of_bucket,
    round(avg(chosen_score - rejected_score), 4) AS mean_gap,
    round(avg(signal_value), 4) AS mean_value
FROM buckets
WHERE $name IS NULL OR name = $name
GROUP BY name, version, bucket, source
ORDER BY name, bucket, pairs DESC, source;
