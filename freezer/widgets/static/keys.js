// The key list every stock labeling widget opens on `?`: a modal <dialog> (role
// dialog, focus inside it while it is open, back where it was when it closes) naming
// the widget's keys. anywidget runs a widget's module from a blob: URL, where no
// relative import resolves, so freezer/widgets/labeling.py (`widget_module`) puts
// this file's text in place of each widget module's `import` of it.

/** A key list for the widget in `el`: `keys` is [[keys, what they do], ...]. `home`
 * takes the focus back when the element that had it is gone by the time the list
 * closes. Returns the `?` button to show and `toggle()` for the `?` key. */
export function keyList(el, title, keys, home) {
  const dialog = document.createElement('dialog');
  dialog.className = 'nbfk';
  // Named by aria-label, not by an id: each widget's module counts on its own.
  dialog.setAttribute('aria-label', title);
  const heading = document.createElement('h2');
  heading.textContent = title;
  const list = document.createElement('dl');
  for (const [combo, what] of keys) {
    const term = document.createElement('dt');
    combo.split(' ').forEach((key) => {
      const kbd = document.createElement('kbd');
      kbd.textContent = key;
      term.append(kbd);
    });
    const description = document.createElement('dd');
    description.textContent = what;
    list.append(term, description);
  }
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'nbfk-close';
  close.textContent = 'Close';
  dialog.append(heading, list, close);
  el.append(dialog);

  let opener = null;
  const hide = () => dialog.open && dialog.close();
  const show = () => {
    opener = document.activeElement;
    dialog.showModal();
    close.focus();
  };
  close.addEventListener('click', hide);
  dialog.addEventListener('keydown', (event) => {
    event.stopPropagation(); // the widget's own keys do nothing while the list is open
    if (event.key === 'Escape' || event.key === '?') {
      event.preventDefault();
      hide();
    }
  });
  dialog.addEventListener('close', () => {
    const back = opener?.isConnected ? opener : home;
    back?.focus({ preventScroll: true });
  });

  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'nbfk-open';
  button.textContent = '?';
  button.title = 'Keys (?)';
  button.setAttribute('aria-label', 'Keys');
  button.setAttribute('aria-haspopup', 'dialog');
  button.addEventListener('click', (event) => {
    event.stopPropagation();
    show();
  });
  return {
    button,
    toggle: () => (dialog.open ? hide() : show()),
  };
}
