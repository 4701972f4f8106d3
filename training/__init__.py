"""riskmatrix: training."""
