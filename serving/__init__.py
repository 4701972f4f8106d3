"""riskmatrix: serving."""
