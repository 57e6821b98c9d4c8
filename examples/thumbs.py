"""Thumbs: a labeling widget in one file, no npm, no build (docs/custom-widgets.md)."""

import anywidget
import traitlets


class Thumbs(anywidget.AnyWidget):
    """Thumbs up or down for each text; follows nbfreeze's labeling protocol."""

    _esm = """
    export default {
      render({ model, el }) {
        el.classList.add("thumbs");
        const draw = () => {
          const labels = model.get("labels");
          el.replaceChildren(...model.get("shown").map((id) => {
            const row = document.createElement("p");
            row.textContent = model.get("texts")[id] + " ";
            for (const choice of ["up", "down"]) {
              const button = document.createElement("button");
              button.textContent = choice;
              button.setAttribute("aria-pressed", String(labels[id] === choice));
              button.onclick = () => {
                model.set("labels", { ...model.get("labels"), [id]: choice });
                model.save_changes();
              };
              row.append(button);
            }
            return row;
          }));
        };
        model.on("change:labels", draw);
        model.on("change:shown", draw);
        draw();
      },
    };
    """
    _css = ".thumbs [aria-pressed=true] { background: teal; color: white; }"
    texts = traitlets.Dict().tag(sync=True)  # item id -> the text to judge
    shown = traitlets.List().tag(sync=True)  # the ids on the page, in order
    labels = traitlets.Dict().tag(sync=True)  # item id -> "up" or "down"
    choices = ("up", "down")

    def __init__(self, texts):
        by_id = {str(n): text for n, text in enumerate(texts)}  # synced keys are text
        self.item_ids = tuple(by_id)
        super().__init__(texts=by_id, shown=list(by_id))

    def show(self, ids):
        self.shown = list(ids)
