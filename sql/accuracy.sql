-- name: accuracy
-- description: Per-source accuracy of a signal column with counts (correct: > 0 or true; ties: = 0, never correct), easiest source first
-- param: signal = 'logprob_margin_v1__correct'  signal column: a number (> 0 correct, < 0 wrong, = 0 tie) or a boolean (true correct; a false whose <signal>__margin* sibling is 0 is a tie)
-- param: by = 'source'  group rows by: source, or dataset (one row per dataset, source shown as (all))
-- param: dataset = NULL  restrict to one dataset (NULL: all)
-- columns: dataset, source, pairs, correct, wrong, ties, missing, accuracy, ci_low, ci_high
-- accuracy = correct / (correct + wrong + ties): a tie counts against accuracy;
-- missing = no value (null or NaN). ci_low/ci_high: Wilson 95% interval of the accuracy.
WITH v AS (
    SELECT
        p.dataset,
        CASE lower($by)
            WHEN 'source' THEN p.source
            WHEN 'dataset' THEN '(all)'
            ELSE error('by must be source or dataset, got ' || $by)
        END AS source,
        CASE WHEN isnan(s[$signal]::DOUBLE) THEN NULL ELSE s[$signal]::DOUBLE END AS x,
        typeof(s[$signal]) = 'BOOLEAN' AS is_bool,
        -- a boolean `correct*` field loses ties; its sibling margin (`correct` -> `margin`,
        -- `correct_per_token` -> `margin_per_token`) tells them apart when present
        TRY_CAST(to_json(s) ->> regexp_replace($signal, '__correct', '__margin') AS DOUBLE) AS sibling
    FROM pairs p
    LEFT JOIN scores s USING (dataset, pair_id)
    WHERE $dataset IS NULL OR p.dataset = $dataset
),
counts AS (
    SELECT
        dataset,
        source,
        count(*) AS pairs,
        count(x) AS scored,
        count_if(x > 0)::BIGINT AS correct,
        count_if(x < 0 OR (x = 0 AND is_bool AND sibling IS DISTINCT FROM 0))::BIGINT AS wrong,
        count_if(x = 0 AND (NOT is_bool OR sibling = 0))::BIGINT AS ties,
        count(*) - count(x) AS missing
    FROM v
    GROUP BY dataset, source
),
rates AS (
    SELECT *, CASE WHEN scored > 0 THEN correct / scored END AS accuracy, 1.959963984540054 AS z
    FROM counts
)
SELECT
    dataset,
    source,
    pairs,
    correct,
    wrong,
    ties,
    missing,
    accuracy,
    (accuracy + z * z / (2 * scored) - z * sqrt(accuracy * (1 - accuracy) / scored + z * z / (4 * scored * scored)))
        / (1 + z * z / scored) AS ci_low,
    (accuracy + z * z / (2 * scored) + z * sqrt(accuracy * (1 - accuracy) / scored + z * z / (4 * scored * scored)))
        / (1 + z * z / scored) AS ci_high
FROM rates
ORDER BY dataset, accuracy DESC NULLS LAST, source;
