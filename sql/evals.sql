-- name: evals
-- description: pass@1 per run, stage and suite from `eval run` (latest version per run and suite), in step order
-- param: run = NULL  restrict to one run (NULL: all)
-- columns: run, suite, stage, step, epochs, pairs_seen, tasks, pass_at_1
WITH latest AS (
    SELECT run, suite, max(CAST(substr(version, 2) AS INTEGER)) AS v FROM evals GROUP BY run, suite
)
SELECT
    e.run,
    e.suite,
    e.stage,
    e.step,
    e.epochs,
    e.pairs_seen,
    count(*) AS tasks,
    round(avg(e.pass_at_1), 4) AS pass_at_1
FROM evals e
JOIN latest l ON e.run = l.run AND e.suite = l.suite AND CAST(substr(e.version, 2) AS INTEGER) = l.v
WHERE $run IS NULL OR e.run = $run
GROUP BY e.run, e.suite, e.stage, e.step, e.epochs, e.pairs_seen
ORDER BY e.run, e.suite, e.step;
