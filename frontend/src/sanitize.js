/**
 * `sanitize-html` for ManagerBase, loaded only when a page needs it.
 *
 * ManagerBase imports it to clean descriptions with `description_allow_html`. With its
 * parsers (htmlparser2, postcss, entities' tables) it is about a quarter of the code a
 * page would need before its first widget, and most pages never use it. So it loads on
 * demand: `WidgetManager.create_view` waits for `load()` before making a view whose
 * description is HTML. Should a description turn to HTML before it has loaded,
 * `sanitize` returns the text escaped, which is always safe, and starts loading it.
 */
let sanitizeHtml = null;
let loading = null;

export function load() {
  loading ??= import('sanitize-html').then((module) => {
    sanitizeHtml = module.default;
  });
  return loading;
}

export default function sanitize(dirty, options) {
  if (sanitizeHtml) return sanitizeHtml(dirty, options);
  load();
  const text = document.createElement('span');
  text.textContent = String(dirty);
  return text.innerHTML;
}
