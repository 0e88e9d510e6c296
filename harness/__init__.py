"""The shared run harness: everything a benchmark's training loop needs that is not its model's
business. One module a job:

- `config`      dataclass defaults -> strict YAML -> `--set a.b=v` overrides -> frozen config
- `errors`      `UserError` and the one-line report at the command-line edge
- `seeding`     one call seeds Python, NumPy, PyTorch and TensorFlow; deterministic mode
- `lifecycle`   the MLLOG run lifecycle (init, run_start, epochs, evals, run_stop)
- `datasets`    checksum manifests: write, verify, name the bad file
- `checkpoint`  one checkpoint schema, atomic writes, resume
- `convert`     weights between a PyTorch state_dict and a Keras model, from each model's name table
- `progress`    rank-0 progress bars on stderr
- `torch_runtime` / `tf_runtime`   device, precision and distributed setup per framework
- `submission`  `--runs N` into `results/<system>/<benchmark>/result_N.txt`
"""
