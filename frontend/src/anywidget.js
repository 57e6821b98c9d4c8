/**
 * anywidget's front end, made with our @jupyter-widgets/base. A chunk of its own, loaded
 * by the first page that shows an anywidget: other pages never parse it.
 */
import * as base from '@jupyter-widgets/base';
import anywidgetFactory from 'anywidget';

export default anywidgetFactory(base);
