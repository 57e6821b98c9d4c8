/**
 * The widget front end of nbfreeze pages, bundled into runtime/static/widgets.js.
 *
 * It exists so that a page renders widgets with the official code (the same models,
 * views and CSS as Jupyter) while the models live on our server instead of a kernel.
 * `WidgetManager` is a `ManagerBase` that does what html-manager's `HTMLManager` does
 * (display views, render Output widgets with JupyterLab's rendermime), except that
 * classes come from this bundle or, for another widget library, from its front end as
 * installed beside its Python package (src/federation.js), comms travel over
 * the page's socket (page.js hands the server's comms to `handle_comm_open`, and opens
 * those of models the page's own code creates, such as a Controller's buttons), and the
 * Output widget's code is loaded only when a page has one.
 */
import * as base from '@jupyter-widgets/base';
import { ManagerBase } from '@jupyter-widgets/base-manager';
import * as controls from '@jupyter-widgets/controls';
import { MessageLoop } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { load as loadSanitizer } from './sanitize.js';
import './widgets.css';

let anywidget = null; // loaded with the first anywidget model (src/anywidget.js)
let federation = null; // loaded with the first model of another library (src/federation.js)

/** Widget modules the bundle holds: name -> [protocol major version, loader]. */
const MODULES = {
  '@jupyter-widgets/base': ['2', async () => base],
  '@jupyter-widgets/controls': ['2', async () => controls],
  '@jupyter-widgets/output': ['1', (manager) => manager.loadOutput()],
  // The Python package and this front end are released together; any 0.x model works.
  anywidget: ['0', () => (anywidget ??= import('./anywidget.js').then((m) => m.default))],
};

/** `{module name: supported versions}`, for messages and tests. */
export const SUPPORTED_MODULES = Object.fromEntries(
  Object.entries(MODULES).map(([name, [major]]) => [name, `${major}.x`]),
);

export class WidgetManager extends ManagerBase {
  /** `openComm(targetName, modelId, data, metadata, buffers)` opens a comm to the server. */
  constructor(openComm) {
    super();
    this.openComm = openComm;
    this.views = new Set();
    window.addEventListener('resize', () => {
      for (const view of this.views) {
        MessageLoop.postMessage(view.luminoWidget, Widget.ResizeMessage.UnknownSize);
      }
    });
  }

  /** A view of `model`; one whose description is HTML waits for the sanitizer. */
  async create_view(model, options) {
    if (model.get('description_allow_html')) await loadSanitizer();
    return super.create_view(model, options);
  }

  /** Show a view (from `create_view`) inside `el`. */
  async display_view(view, el) {
    Widget.attach(view.luminoWidget, el);
    this.views.add(view);
    view.once('remove', () => this.views.delete(view));
    return view;
  }

  /**
   * A model or view class: from the bundle for the standard widgets and anywidget, else
   * from the widget library's installed front end (src/federation.js). A module found
   * nowhere, or a bundled module's other major version, is an error naming the class,
   * which the manager shows in place of the widget.
   */
  async loadClass(className, moduleName, moduleVersion) {
    const what = `${className} from ${moduleName}@${moduleVersion} is not supported here`;
    const entry = Object.hasOwn(MODULES, moduleName) ? MODULES[moduleName] : null;
    if (!entry) {
      // Another widget library: its own front end, where Jupyter finds it (federation.js).
      federation ??= import('./federation.js');
      let module;
      try {
        module = await (await federation).loadModule(moduleName);
      } catch (error) {
        throw new Error(`${what}: ${error.message ?? error}.`);
      }
      const cls = module?.[className];
      if (!cls) throw new Error(`${what}: its front end has no class ${className}.`);
      return cls;
    }
    const major = String(moduleVersion ?? '')
      .replace(/^[\^~=v]+/, '')
      .split('.')[0];
    if (major !== entry[0]) {
      throw new Error(`${what}: this page bundles version ${entry[0]}.x of it.`);
    }
    const cls = (await entry[1](this))[className];
    if (!cls) throw new Error(`${what}: ${moduleName} has no class ${className}.`);
    return cls;
  }

  /** The Output widget's module; sets `renderMime`, which its views render with. */
  loadOutput() {
    this.output ??= import('./output.js').then((output) => {
      this.renderMime = output.createRenderMime(this);
      return output;
    });
    return this.output;
  }

  /** A model created by the page's code gets its widget on the server, as in a kernel. */
  async _create_comm(targetName, modelId, data, metadata, buffers) {
    return this.openComm(targetName, modelId, data, metadata, buffers);
  }

  /** No comm exists that the page was not told about in a comm_open. */
  _get_comm_info() {
    return Promise.resolve({});
  }
}
