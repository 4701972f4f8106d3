"""riskmatrix: supervision."""
