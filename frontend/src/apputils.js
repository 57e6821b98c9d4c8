/**
 * JupyterLab's apputils, for the widget libraries whose front ends expect the page to
 * provide it (ipydatagrid, ipyvuetify; src/federation.js). Built apart (build.mjs): in
 * the main build the whole of it would have joined the Output widget's chunk, which
 * needs a small part.
 */
export * from '@jupyterlab/apputils';
