"""prefcurate: curate preference data for DPO-family alignment.

Build pairs from rated data, score each pair with difficulty signals, partition pairs
into versioned easy-to-hard buckets, explore everything with SQL, and feed the buckets
in order to a DPO trainer.
"""

__version__ = "0.1.0"
