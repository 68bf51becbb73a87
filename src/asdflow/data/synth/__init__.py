"""Synthetic machine-sound factory: DCASE-layout data sets rendered from physical archetypes.

Writes exactly the DCASE Task 2 layout and file names: <set>/<machine type>/ holds train/, test/
and supplemental/ folders of section_00_<domain>_<split>_<label>_<NNNN>_<attributes>.wav clips
and an attributes_00.csv, and the evaluation set's test clips are named section_00_NNNN.wav.
Data sets have domain shift, hidden attributes (true values kept in a separate ground-truth
file), several anomaly kinds, an "earlier years" set and a non-machine general-audio corpus.
It is the embedded default data set.
"""

from asdflow.data.synth.catalog import (
    DEFAULT_SETS,
    MACHINE_TYPES,
    AttributeSpec,
    Counts,
    MachineType,
    get_machine_type,
    machine_type_from_dict,
)
from asdflow.data.synth.general import GENERAL_KINDS
from asdflow.data.synth.render import render_clip
from asdflow.data.synth.writer import (
    SynthSettings,
    generate_general,
    generate_machine,
    plan_clips,
)

__all__ = [
    "DEFAULT_SETS",
    "GENERAL_KINDS",
    "MACHINE_TYPES",
    "AttributeSpec",
    "Counts",
    "MachineType",
    "SynthSettings",
    "generate_general",
    "generate_machine",
    "get_machine_type",
    "machine_type_from_dict",
    "plan_clips",
    "render_clip",
]
