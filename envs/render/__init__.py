"""Pictures: episode and evaluation figures (``figures``, matplotlib) and the one-line diagram
(``one_line``, and ``one_line_html`` with plotly)."""
