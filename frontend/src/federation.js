/**
 * Widget libraries' own front ends (bqplot, ipycanvas, ipyleaflet, ...), loaded from
 * where Jupyter finds them, the first time a page meets a model whose module the bundle
 * does not hold. A chunk of its own: a page of standard widgets never loads it.
 *
 * As in JupyterLab and Voilà: the server lists the installed labextensions
 * (`/api/v1/frontends`, runtime/host/frontends.py); each is a webpack module-federation
 * container (`static/remoteEntry.<hash>.js`, a classic script that sets
 * `window._JUPYTERLAB[package]`). We init it with a share scope that provides this
 * bundle's `@jupyter-widgets/*`, Lumino and JupyterLab packages (so its models extend our
 * `WidgetModel`, and its views attach to our Lumino), after the containers it expects to
 * provide what it does not bundle (bqplot needs bqscales); then take its `./extension`
 * and activate its JupyterLab plugins with a registry that records what they register
 * (`IJupyterWidgetRegistry.registerWidget({name, version, exports})`). A package with
 * only a classic nbextension (`nbextensions/<name>/index.js`, AMD) is loaded by a small
 * AMD `define`, its dependencies given from the same modules.
 */

import * as base from '@jupyter-widgets/base';
import * as controls from '@jupyter-widgets/controls';
import * as algorithm from '@lumino/algorithm';
import * as commands from '@lumino/commands';
import * as coreutils from '@lumino/coreutils';
import * as datagrid from '@lumino/datagrid';
import * as disposable from '@lumino/disposable';
import * as domutils from '@lumino/domutils';
import * as dragdrop from '@lumino/dragdrop';
import * as keyboard from '@lumino/keyboard';
import * as messaging from '@lumino/messaging';
import * as polling from '@lumino/polling';
import * as properties from '@lumino/properties';
import * as signaling from '@lumino/signaling';
import * as virtualdom from '@lumino/virtualdom';
import * as widgets from '@lumino/widgets';
import backbone from 'backbone';
import jquery from 'jquery';
import underscore from 'underscore';

// `{package: version}` of the packages below, from the lockfile (build.mjs defines it as
// JSON text, so that it stays in this chunk).
const VERSIONS = JSON.parse(NBFREEZE_SHARED_VERSIONS);

/**
 * What we provide to containers and AMD modules: package -> its module, or a function
 * loading it (the Output widget's chunk, which a page may already have loaded).
 */
const PROVIDED = {
  '@jupyter-widgets/base': base,
  '@jupyter-widgets/controls': controls,
  '@jupyter-widgets/output': () => import('./output.js'),
  // Built apart (src/apputils.js): its file name is known once that build has run.
  '@jupyterlab/apputils': () => import(new URL(NBFREEZE_APPUTILS, import.meta.url).href),
  '@lumino/algorithm': algorithm,
  '@lumino/commands': commands,
  '@lumino/coreutils': coreutils,
  '@lumino/datagrid': datagrid,
  '@lumino/disposable': disposable,
  '@lumino/domutils': domutils,
  '@lumino/dragdrop': dragdrop,
  '@lumino/keyboard': keyboard,
  '@lumino/messaging': messaging,
  '@lumino/polling': polling,
  '@lumino/properties': properties,
  '@lumino/signaling': signaling,
  '@lumino/virtualdom': virtualdom,
  '@lumino/widgets': widgets,
};
const provided = async (name) => {
  const found = PROVIDED[name];
  return typeof found === 'function' ? found() : found;
};

// AMD modules (classic nbextensions) also ask for these by name.
const AMD_PROVIDED = { ...PROVIDED, jquery, underscore, backbone };


// A webpack consumer reads a shared module's default export through `__esModule`.
const asWebpackModule = (namespace) =>
  Object.defineProperty({ ...namespace }, '__esModule', { value: true });

/**
 * The share scope every container is initialised with, as webpack lays one out:
 * `{package: {version: {get, from, eager, loaded}}}`, `get` resolving to a factory.
 * Ours are marked loaded: a singleton in use stays the one every container gets.
 */
const shareScope = Object.fromEntries(
  Object.keys(PROVIDED).map((name) => [
    name,
    {
      [VERSIONS[name]]: {
        get: () => provided(name).then((namespace) => () => asWebpackModule(namespace)),
        from: 'nbfreeze',
        eager: false,
        loaded: 1,
      },
    },
  ]),
);

let index = null; // the server's list of installed front ends, fetched once
const containers = new Map(); // labextension -> promise of its initialised container
const registered = new Map(); // widget module -> {version, exports} its plugin registered
const amdModules = new Map(); // nbextension -> promise of its exports

function frontEnds() {
  // This chunk is served from ROOT/static/: the list is at ROOT/api/v1/frontends, under
  // the app's root path (docs/deploy.md).
  const where = new URL('../api/v1/frontends', import.meta.url);
  index ??= fetch(where, { credentials: 'same-origin' }).then((response) => {
    if (!response.ok) throw new Error(`the server's list of front ends: HTTP ${response.status}`);
    return response.json();
  });
  return index;
}

/** A classic script (a container sets a global, and finds its chunks from its own URL). */
function loadScript(url) {
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = url;
    script.async = true;
    script.onload = () => resolve();
    script.onerror = () => reject(new Error(`could not load ${url}`));
    document.head.append(script);
  });
}

/** The registry a widget labextension's plugin is activated with. */
const registry = {
  registerWidget(data) {
    registered.set(data.name, data);
  },
};

async function activate(container, module) {
  const exported = (await container.get(module))();
  const plugins = [exported.default ?? exported].flat();
  for (const plugin of plugins) {
    if (!plugin || typeof plugin.activate !== 'function') continue;
    const requires = plugin.requires ?? [];
    const optional = plugin.optional ?? [];
    const tokens = [...requires, ...optional];
    // Only widget plugins: a mime renderer or a command needs JupyterLab's app.
    if (!tokens.includes(base.IJupyterWidgetRegistry)) continue;
    if (requires.some((token) => token !== base.IJupyterWidgetRegistry)) {
      const names = requires.map((token) => token?.name).join(', ');
      console.warn(`nbfreeze: ${plugin.id} needs ${names}; given the widget registry only`);
    }
    const services = tokens.map((token) => (token === base.IJupyterWidgetRegistry ? registry : null));
    await plugin.activate({}, ...services);
  }
}

/** Load, initialise and activate one labextension (and first the ones it needs). */
function container(name, labs) {
  if (!containers.has(name)) {
    const lab = labs[name];
    const loading = (async () => {
      for (const need of lab.needs) {
        if (!Object.hasOwn(PROVIDED, need) && Object.hasOwn(labs, need)) await container(need, labs);
      }
      await loadScript(lab.load);
      const loaded = globalThis._JUPYTERLAB?.[name];
      if (!loaded) throw new Error(`${lab.load} did not define the container ${name}`);
      await loaded.init(shareScope);
      if (lab.style) (await loaded.get(lab.style))();
      if (lab.extension) await activate(loaded, lab.extension);
      return loaded;
    })();
    containers.set(name, loading);
  }
  return containers.get(name);
}

// ---- Classic nbextensions: one AMD module per script, loaded one at a time.

let amdQueue = Promise.resolve();

function loadAmd(name, urls) {
  if (!amdModules.has(name)) {
    const loading = (amdQueue = amdQueue.then(() => defineFrom(urls[name]), () => defineFrom(urls[name])))
      .then(async ([deps, factory]) => {
        const exports = {};
        const module = { exports };
        const values = await Promise.all(
          deps.map((dep) => {
            if (dep === 'exports') return exports;
            if (dep === 'module') return module;
            if (dep === 'require') return (n) => { throw new Error(`require(${n}) in ${name}`); };
            if (Object.hasOwn(PROVIDED, dep)) return provided(dep);
            if (Object.hasOwn(AMD_PROVIDED, dep)) return AMD_PROVIDED[dep];
            if (Object.hasOwn(urls, dep)) return loadAmd(dep, urls);
            throw new Error(`${name} needs ${dep}, which is neither bundled nor installed`);
          }),
        );
        const result = typeof factory === 'function' ? factory(...values) : factory;
        return result ?? module.exports;
      });
    amdModules.set(name, loading);
  }
  return amdModules.get(name);
}

/** Run one AMD script with a `define` of ours; its first `define` call is the module. */
function defineFrom(url) {
  let defined = null;
  const define = (...args) => {
    if (typeof args[0] === 'string') args.shift(); // a named module: the name is ours
    const [deps, factory] = Array.isArray(args[0]) ? args : [[], args[0]];
    defined ??= [deps, factory];
  };
  define.amd = {};
  const before = Object.getOwnPropertyDescriptor(globalThis, 'define');
  globalThis.define = define;
  return loadScript(url)
    .finally(() => {
      if (before) Object.defineProperty(globalThis, 'define', before);
      else delete globalThis.define;
    })
    .then(() => {
      if (!defined) throw new Error(`${url} defined no AMD module`);
      return defined;
    });
}

// ---- What widgets.js asks.

/** The exports of widget module `moduleName`, from its installed front end. */
export async function loadModule(moduleName) {
  const { labextensions: labs, aliases, nbextensions } = await frontEnds();
  const lab = Object.hasOwn(labs, moduleName) ? moduleName : aliases[moduleName];
  if (lab && Object.hasOwn(labs, lab)) {
    await container(lab, labs);
    const data = registered.get(moduleName);
    if (data) return typeof data.exports === 'function' ? data.exports() : data.exports;
    if (!Object.hasOwn(nbextensions, moduleName)) {
      throw new Error(`its labextension ${lab} registered no widget module ${moduleName}`);
    }
  }
  if (Object.hasOwn(nbextensions, moduleName)) return loadAmd(moduleName, nbextensions);
  throw new Error(
    `its front end, the npm package ${moduleName}, is installed nowhere Jupyter looks ` +
      '(no labextension or nbextension of that name): install the Python package that provides it',
  );
}

/** `{widget module: version}` the loaded labextensions registered, for tests. */
export function registeredModules() {
  return Object.fromEntries([...registered].map(([name, data]) => [name, data.version]));
}
