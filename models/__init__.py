"""riskmatrix: models."""
