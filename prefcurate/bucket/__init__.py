"""Bucket stage: held-out split by prompt (`split`), easy-to-hard partitions (`partition`),
and export for trainers (`export`)."""
