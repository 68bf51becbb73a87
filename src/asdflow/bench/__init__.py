"""Benchmarks that print figures (never assertions): `asdflow bench <benchmark>`, one module each
(`asdflow bench <benchmark> --help` lists its options; `asdflow.bench.cli` parses them).

- `features` (features.py): writes machine-like clips, builds their log-mel cache and reads a
  shuffled training epoch from it and, side by side, computes fbank on the fly; prints the cache
  build rate, both epoch rates in clips/s and their ratio.
- `attributes` (clustering.py, after `make run`): prints, per machine type and attribute, the
  5-fold accuracy of predicting the attribute's value from loudness alone and from pooled log-mel,
  beside chance, and the means.
- `clustering` (clustering.py, after `make run`): prints the NMI, ARI and number of clusters found
  of each clustering variant on each encoder's embeddings, mean over the machine types whose true
  attributes are known.
- `clones` (clones.py): prints student clips/s of pre-training steps with clone_batch 16 and 1 at
  the same student rows per step, and their ratio.
- `pretrain-memory` (clones.py): prints the peak resident memory and duration of one pre-training
  step (forward, backward, AdamW, EMA) on CPU.
- `knn` (knn.py): prints test clips scored per second by our torch k-NN scorer and by
  scikit-learn's brute-force NearestNeighbors on the same random data, and whether they agree.
- `jobs` (jobs.py): reads a Snakemake log and prints, per rule, the jobs run and their summed and
  mean wall seconds, and the run's wall time.
- `hours` (hours.py): times pre-training and fine-tuning steps and the embedding pass of a
  configuration on this machine's device; prints the step figures and the hours of each stage.
- `precision` (hours.py): prints float32 against bf16 step times of pre-training and fine-tuning
  per encoder size and thread count, and the bf16 speed-up.
- `quality` (quality.py, after `make run` on the synthetic demo): prints and writes the diagnosis
  of every encoder's embeddings (shared direction, nearest-neighbour attribute accuracy, k-NN
  AUCs) and the AUC per anomaly kind and domain.
- `finetune` (quality.py, after `make run`): fine-tunes one run once per variant of one factor at
  a time; prints one row per variant (AUCs, last training and held-back accuracy) and writes the
  training curves.

printing.py holds the `name  value` printer that features, clones and pretrain-memory share.
"""
