/**
 * Opens the page's WebSocket (docs/protocol.md) while the page is still being parsed.
 *
 * A classic script, put inline into each widget page (runtime/templates/socket.html)
 * and admitted by the Content-Security-Policy through its hash: a module, even an async
 * one, ran only after the browser had laid out the page's Markdown, 100 ms and more
 * after the page arrived. So the server runs the notebook while the browser loads the
 * widget bundle, and its first frames wait in `early` for page.js. The socket asks for
 * pacing: the rest of the notebook runs once page.js says its first widget is drawn.
 * Should page.js never run, it shows the page's hidden rest (runtime/render.py) after
 * three seconds.
 */
(() => {
  // A staged app's page names its own socket (which stage it shows) in a meta tag.
  const path = document.querySelector('meta[name="nbf-socket"]')?.content || 'api/v1/ws';
  const url = new URL(path, location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('paced', '1');
  const socket = new WebSocket(url);
  socket.binaryType = 'arraybuffer';
  const early = [];
  socket.onmessage = (event) => early.push(event.data);
  globalThis.nbfreezeSocket = { socket, early };
  setTimeout(() => document.querySelector('.nbf-rest[hidden]')?.removeAttribute('hidden'), 3000);
})();
