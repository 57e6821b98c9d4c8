/**
 * jQuery, evaluated only once some code asks it for something.
 *
 * @jupyter-widgets/base, a few controls, the Output widget and Backbone import jQuery,
 * but a widget view uses it only to wrap its element as `view.$el`: Backbone.NativeView
 * (in base) handles the views' events and attributes with the DOM. Evaluating jQuery up
 * front (its feature tests build elements and read their styles) took about a fifth of
 * a page's main-thread time before its first widget. So `$(node)` gives a stand-in that
 * holds the node, and jQuery is evaluated, and answers, the first time anything else is
 * asked of a stand-in or of `$` (anywidget's views call `view.$el.empty()`). `$` of
 * anything but one DOM node is jQuery's at once.
 */
let jQuery = null;
const real = () => (jQuery ??= require('jquery'));

class StandIn {
  constructor(node) {
    this[0] = node;
    this.length = 1;
  }
}

// A stand-in's own `0` and `length` are its node; anything else is jQuery's, for the node.
const standIn = {
  get(target, name) {
    if (Object.hasOwn(target, name)) return target[name];
    const wrapped = real()(target[0]);
    const value = wrapped[name];
    return typeof value === 'function' ? value.bind(wrapped) : value;
  },
};

function $(selector, context) {
  if (selector instanceof Node && context === undefined) {
    return new Proxy(new StandIn(selector), standIn);
  }
  return real()(selector, context);
}
$.prototype = StandIn.prototype; // `view.$el instanceof $`, as base checks

// `$`'s own properties and a function's (`instanceof` asks for Symbol.hasInstance) are
// answered here, and so is `__esModule`, which an ES import of this module asks for.
module.exports = new Proxy($, {
  get(target, name) {
    return name in target || name === '__esModule' ? target[name] : real()[name];
  },
});
