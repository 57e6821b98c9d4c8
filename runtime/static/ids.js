/**
 * Random ids for the page's messages: comm ids, as a kernel would make them, and a
 * Submit's request id. Made from crypto.getRandomValues, which every page has:
 * crypto.randomUUID exists only in a secure context (https or localhost), and a page
 * served over plain http on a LAN's hostname is not one.
 */
export function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
