"""riskmatrix: models — estimators, calibration, classes and explanations.

Modules (import them directly; this package imports nothing heavy on purpose, so
`supervision` can use `models.classes` types without loading LightGBM):

- `models.lgbm`: `RiskClassifier`, monotone LightGBM on catalogue model inputs;
- `models.calibration`: `CalibratedRiskModel`, isotonic / Platt on a later time slice;
- `models.baselines`: `PointScorecard` + `PointRule`, `LogisticBaseline`;
- `models.explain`: `shap_contributions`, `top_reasons`, `global_importance`,
  `check_catalogue_labels`, `reason_code`;
- `models.classes`: `cutoffs_from_shares`, `assign_classes`, `HardRule`;
- `models.serialization`: `RiskModelBundle`, `model_fingerprint`;
- `models.inputs`: column checks shared by all estimators (`FeatureFrameError`).
"""
