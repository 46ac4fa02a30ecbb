"""Live plotly widgets for JupyterLab."""

__all__: list[str] = []
