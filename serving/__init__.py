"""fadecast's prediction service (FastAPI + onnxruntime) and the ``fadecast`` command line.
Never imports torch or MLflow's training code."""
