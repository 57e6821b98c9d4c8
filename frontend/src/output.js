/**
 * The Output widget and what it renders with (JupyterLab's rendermime and output area),
 * split from widgets.js and loaded the first time a page needs an Output widget: a
 * third of the bundle that a page of sliders and buttons never has to evaluate.
 */
import { RenderMimeRegistry, standardRendererFactories } from '@jupyterlab/rendermime';
import {
  WIDGET_MIMETYPE,
  WidgetRenderer,
} from '@jupyter-widgets/html-manager/lib/output_renderers.js';

export { OutputModel, OutputView } from '@jupyter-widgets/html-manager/lib/output.js';

/** The registry HTMLManager makes, widgets inside outputs included. */
export function createRenderMime(manager) {
  const renderMime = new RenderMimeRegistry({ initialFactories: standardRendererFactories });
  const createRenderer = (options) => new WidgetRenderer(options, manager);
  renderMime.addFactory({ safe: false, mimeTypes: [WIDGET_MIMETYPE], createRenderer }, 0);
  return renderMime;
}
