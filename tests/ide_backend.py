"""A stand-in for an IDE's plot pane (PyCharm's module://backend_interagg, Spyder's inline plots): a module://
backend that draws with Agg and has no window of its own; show() only records what it was given."""

import matplotlib.pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg

FigureCanvas = FigureCanvasAgg
shown = []


def show(*args, **kwargs):
    shown.extend(plt.get_fignums())
