"""riskmatrix: features."""
