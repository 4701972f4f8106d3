"""riskmatrix: simulation."""
