"""`prefcurate demo`: the whole pipeline on the bundled data (`run`), stage by stage (`stages`)."""
