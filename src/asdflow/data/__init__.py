"""Data sources (real DCASE archives, the synthetic machine-sound factory) and the clip table
they share.

Every source ends in the same *clip table*: one row per wav file, with the columns in CLIP_COLUMNS.
"""

CLIP_COLUMNS = [
    "file",  # path of the wav file, as found under the data root
    "machine_type",  # e.g. "fan"
    "section",  # "00"
    "domain",  # "source" | "target" | "" (unknown: eval test clips without ground truth)
    "split",  # "train" | "test" | "supplemental"
    "label",  # "normal" | "anomaly" | "" (unknown)
    "index",  # clip index from the file name, -1 where the name carries none
    "attributes",  # JSON object with sorted keys, "{}" where hidden or unknown
    "attributes_known",  # False for noAttribute clips and unlabeled eval test clips
]
