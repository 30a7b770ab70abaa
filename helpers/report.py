"""The end of a run: the final line, the accuracy plot in a window, and mistakes.png (the test digits the
saved weights get wrong, the most confident first), also at a stop that keeps finished epochs."""
import os
import sys

from data import one_line

from . import figures

MISTAKES = "mistakes.png"


def write_mistakes(run):
    """mistakes.png for the saved epoch's weights (at a stop, the live ones may be half an epoch on)."""
    saved = run.checkpoint
    if not saved.saved or run.lesson is None:  # nothing saved, or stopped before the model was made
        return
    path = os.path.join(run.folder.path, MISTAKES)
    model, test_loader = run.lesson.model, run.lesson.test_loader
    try:
        model.load_state_dict(saved.state["model"])
        images, labels, predicted, confidence = figures.find_mistakes(model, test_loader, run.device)
        total = run.lesson.data["test_images"]
        fig = figures.plot_mistakes(images, labels, predicted, confidence, total, run.net_name)
        try:
            figures.save(fig, path)
        finally:
            figures.plt.close(fig)
    except (OSError, RuntimeError) as e:  # out of memory or disk: the other files are saved, say so and go on
        print(f"{MISTAKES} skipped: {one_line(e)}", file=sys.stderr)
        return
    except KeyboardInterrupt:  # a (second) Ctrl-C: skip the extra figure, not the stop's message
        print(f"\n{MISTAKES} skipped", file=sys.stderr)
        return
    print(f"mistakes: {len(labels)} of {total:,} test images wrong after epoch {saved.saved}; {path}")


def finish(run):
    history = run.checkpoint.history
    best = max(history, key=lambda row: row[2])
    plot_path = os.path.join(run.folder.path, "accuracy.png")
    print(f"final test accuracy {history[-1][2]:.2f}% (best {best[2]:.2f}% at epoch {best[0]}); plot: {plot_path}")
    if not run.args.no_show and figures.can_show():
        print("the plot is open in a window: close it to end the script (--no-show skips it)", flush=True)
        figures.show(figures.plot(history, run.net_name), no_show=False)
