// Builds the one bundle of nbfreeze from the locked npm packages: the official Jupyter
// widget front end plus anywidget's, as runtime/static/widgets.js (with its chunks),
// widgets.css, Font Awesome's fonts and a licence file. The output must be byte-identical
// from run to run, because it is committed and tests/test_frontend_bundle.py rebuilds it
// and compares.
//
//   node build.mjs [--outdir DIR]     (default: ../runtime/static)
import { readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const argOutdir = process.argv.indexOf('--outdir');
const outdir = resolve(argOutdir > 0 ? process.argv[argOutdir + 1] : `${here}/../runtime/static`);

// Files this script owns in outdir; stale ones (an old font hash) are removed first.
const OWNED = /^(widgets[.-].+|fa-.+\.woff2)$/;

// Rewrites the one spot where a package needs it, and fails the build if the spot moved.
function patch(text, from, to, file) {
  if (!text.includes(from)) throw new Error(`build.mjs: ${file} no longer contains ${from}`);
  return text.split(from).join(to);
}

const plugin = {
  name: 'nbfreeze',
  setup(build) {
    // anywidget's dist/index.js ends in an AMD `define([...], factory)`; make the factory
    // the module's default export so we call it with our own @jupyter-widgets/base.
    build.onLoad({ filter: /[\\/]anywidget[\\/]dist[\\/]index\.js$/ }, ({ path }) => ({
      contents: patch(
        readFileSync(path, 'utf8'),
        'define(["@jupyter-widgets/base"], widget_default);',
        'export default widget_default;',
        path,
      ),
      loader: 'js',
    }));
    // html-manager's Output widget imports its CSS, which the lazily loaded output chunk
    // could not apply; src/widgets.css includes it instead.
    const outputWidget = /html-manager[\\/]lib[\\/]output\.js$/;
    build.onResolve({ filter: /^\.\.\/css\/output\.css$/ }, ({ path, importer }) =>
      outputWidget.test(importer) ? { path, namespace: 'empty' } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'empty' }, () => ({ contents: '', loader: 'empty' }));
    // ManagerBase's sanitize-html loads apart from the first view's code (src/sanitize.js).
    const managerBase = /base-manager[\\/]lib[\\/]manager-base\.js$/;
    build.onResolve({ filter: /^sanitize-html$/ }, ({ importer }) =>
      managerBase.test(importer) ? { path: join(here, 'src', 'sanitize.js') } : undefined,
    );
    // jQuery is evaluated only once some code uses it (src/jquery.cjs).
    const jquery = join(here, 'src', 'jquery.cjs');
    build.onResolve({ filter: /^jquery$/ }, ({ importer }) =>
      importer === jquery ? undefined : { path: jquery },
    );
    // Font Awesome lists five formats per face; every browser we serve reads woff2.
    build.onLoad({ filter: /fontawesome-free[\\/]css[\\/]all\.min\.css$/ }, ({ path }) => {
      const css = readFileSync(path, 'utf8');
      const woff2 = /url\([^)]*\.woff2\) format\("woff2"\)/;
      const keepWoff2 = (src) => `src:${src.match(woff2)?.[0]}`;
      const out = css.replace(/src:url\([^)]*\.eot\);src:[^}]*/g, keepWoff2);
      if ((out.match(/format\("woff2"\)/g) || []).length !== 3 || out.includes('.eot')) {
        throw new Error(`build.mjs: Font Awesome @font-face rules changed in ${path}`);
      }
      return { contents: out, loader: 'css' };
    });
  },
};

// One licence file for everything in the bundle: name, version, licence, its text.
function licenses(metafile) {
  const dirs = new Set();
  const inBundle = Object.values(metafile.outputs).flatMap((o) =>
    Object.entries(o.inputs).filter(([, { bytesInOutput }]) => bytesInOutput > 0),
  );
  for (const [input] of inBundle) {
    const m = input.match(/^([^:]*node_modules\/(?:@[^/]+\/)?[^/]+)\//);
    if (m) dirs.add(m[1]);
  }
  const parts = [...dirs].sort().map((rel) => {
    const dir = join(here, rel);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const file = readdirSync(dir).sort().find((f) => /^(licen[cs]e|copying)/i.test(f));
    const text = file ? readFileSync(join(dir, file), 'utf8').trim() : `License: ${pkg.license}`;
    return `${pkg.name} ${pkg.version} (${pkg.license})\n\n${text}\n`;
  });
  const rule = `\n${'-'.repeat(72)}\n\n`;
  return `Third-party software bundled in widgets*.js and widgets.css\n\n${parts.join(rule)}`;
}

// The versions federation.js offers other libraries' front ends: the locked ones.
const lock = JSON.parse(readFileSync(join(here, 'package-lock.json'), 'utf8'));
const federation = readFileSync(join(here, 'src', 'federation.js'), 'utf8');
const shared = [...federation.matchAll(/^ {2}'(@[^']+)': /gm)].map((m) => m[1]);
const sharedVersions = Object.fromEntries(
  shared.map((name) => {
    const version = lock.packages[`node_modules/${name}`]?.version;
    if (!version) throw new Error(`build.mjs: ${name} is not in package-lock.json`);
    return [name, version];
  }),
);

if (existsSync(outdir)) {
  for (const f of readdirSync(outdir)) if (OWNED.test(f)) rmSync(join(outdir, f));
}

const common = {
  absWorkingDir: here,
  outdir,
  assetNames: '[name]-[hash]',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  // anywidget needs AbortSignal.any: Chrome 116, Firefox 124, Safari 17.4.
  target: ['chrome116', 'firefox124', 'safari17.4'],
  minify: true,
  legalComments: 'none',
  charset: 'utf8',
  metafile: true,
  // JupyterLab's icons are SVG text in its modules (a webpack convention).
  loader: { '.woff2': 'file', '.svg': 'text' },
  plugins: [plugin],
  logLevel: 'warning',
};

// JupyterLab's apputils, for other libraries' front ends (src/apputils.js says why apart).
const apputils = await esbuild.build({
  ...common,
  entryPoints: ['src/apputils.js'],
  entryNames: 'widgets-[name]-[hash]',
  define: { 'process.env.NODE_ENV': '"production"', global: 'globalThis' },
});
const apputilsFile = Object.keys(apputils.metafile.outputs)
  .map((f) => f.replace(/^.*[\\/]/, ''))
  .find((f) => f.endsWith('.js'));

const result = await esbuild.build({
  ...common,
  entryPoints: ['src/widgets.js'],
  entryNames: '[name]',
  chunkNames: 'widgets-[name]-[hash]',
  splitting: true,
  define: {
    'process.env.NODE_ENV': '"production"',
    global: 'globalThis',
    // A string, parsed in federation.js: esbuild hoists an object define into a variable
    // of the chunk shared with the entry, which every page loads.
    NBFREEZE_SHARED_VERSIONS: JSON.stringify(JSON.stringify(sharedVersions)),
    NBFREEZE_APPUTILS: JSON.stringify(`./${apputilsFile}`),
  },
});

const outputs = { ...apputils.metafile.outputs, ...result.metafile.outputs };
writeFileSync(join(outdir, 'widgets.LICENSES.txt'), licenses({ outputs }));
for (const [file, { bytes }] of Object.entries(outputs).sort()) {
  const kib = (bytes / 1024).toFixed(1).padStart(7);
  console.log(`${file.replace(/^.*[\\/]/, '').padEnd(28)} ${kib} KiB`);
}
