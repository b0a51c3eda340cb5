"""fadecast's learning layer. Importing ``ml`` loads no torch: features, windows and advice are
pure numpy/pandas so the service can share them; torch lives in ml.models/ml.training/ml.export."""
