// qfnb's inline completions in JupyterLab 4 and Notebook 7: an inline completion provider for
// JupyterLab's own inline completer (ghost text; Tab accepts, Escape dismisses, Alt+[ / Alt+] cycle,
// its settings under "Inline Completer", where the qfnb provider is on by default and can be turned
// off). Each suggestion is asked of qfnb's Jupyter server extension (POST {base}/qfnb/complete,
// with the server's own token and XSRF header): the text around the cursor, the notebook's earlier
// code cells, its path and kernel. The server holds the model keys; none reaches this page. A
// request the user has typed past is aborted, and the server withdraws it at the engine. A refusal
// (completions off, the daily cap, the notebook's budget) is said once per reason.

import { Notification } from '@jupyterlab/apputils';
import { ICompletionProviderManager } from '@jupyterlab/completer';
import { URLExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';

export const PROVIDER_ID = '@qfnb/inline-completer';
/** Earlier cells sent as context at most (the server keeps what fits its token budget). */
const MAX_CELLS = 60;
const MAX_CHARS = 60000;
/** ms after the last cell ran before the notebook's new context is read ahead. */
const WARM_AFTER_RUN = 500;

/** The provider's settings, inside JupyterLab's "Inline Completer" settings (with its own
 * enabled, debouncerDelay and timeout). */
const SCHEMA = {
  // autoFillInMiddle: text after the cursor (an auto-closed bracket) is the model's suffix, not a reason to wait
  default: { debouncerDelay: 300, timeout: 20000, autoFillInMiddle: true, model: '', dailyTokens: 200000, maxTokens: 64 },
  properties: {
    model: {
      title: 'Model',
      description: "Empty: the local platform's coder model (Qwen2.5-Coder-0.5B). A local model's name, or " +
        "cloud:<model id> for a cloud model on a 2026 account (the server's QIANFAN_API_KEY).",
      type: 'string'
    },
    dailyTokens: {
      title: 'Daily token cap',
      description: 'Tokens completions may use per day (all notebooks); past it, nothing is sent until tomorrow.',
      type: 'integer',
      minimum: 0
    },
    maxTokens: {
      title: 'Longest suggestion (tokens)',
      type: 'integer',
      minimum: 1,
      maximum: 256
    }
  }
};

/** The earlier code cells of the notebook behind `widget` (none for a console or a file editor),
 * and the highest execution count among them (it changes when a cell ran: the kernel's names
 * are asked again). */
function notebookContext(widget) {
  const notebook = widget && widget.content;
  if (!notebook || !Array.isArray(notebook.widgets) || typeof notebook.activeCellIndex !== 'number') {
    return { cells: [], executionCount: 0 };
  }
  const cells = [];
  let executionCount = 0;
  let chars = 0;
  const upTo = Math.min(notebook.activeCellIndex, notebook.widgets.length);
  for (let i = upTo - 1; i >= 0 && cells.length < MAX_CELLS; i--) {
    const model = notebook.widgets[i].model;
    if (model.type !== 'code') {
      continue;
    }
    const source = model.sharedModel.getSource();
    chars += source.length;
    if (chars > MAX_CHARS) {
      break;
    }
    cells.unshift(source);
  }
  for (const cell of notebook.widgets) {
    if (cell.model.type === 'code') {
      executionCount = Math.max(executionCount, cell.model.executionCount || 0);
    }
  }
  return { cells, executionCount };
}

export class QfnbInlineProvider {
  constructor() {
    this.name = 'qfnb';
    this.identifier = PROVIDER_ID;
    this.schema = SCHEMA;
    this.settings = { ...SCHEMA.default };
    this._inFlight = new Map(); // widget id -> the AbortController of its request in flight
    this._told = new Set(); // the refusals already said
  }

  configure(settings) {
    this.settings = { ...this.settings, ...settings };
  }

  async fetch(request, context) {
    const widget = context.widget;
    const key = widget ? widget.id : '';
    const previous = this._inFlight.get(key);
    if (previous) {
      previous.abort(); // typed past: the server cancels it and the engine stops
    }
    const controller = new AbortController();
    this._inFlight.set(key, controller);
    const { cells, executionCount } = notebookContext(widget);
    const kernel = context.session && context.session.kernel ? context.session.kernel.id : '';
    const body = {
      prefix: request.text.slice(0, request.offset),
      suffix: request.text.slice(request.offset),
      cells,
      executionCount,
      kernel,
      path: widget && widget.context ? widget.context.path : '',
      model: this.settings.model || '',
      dailyTokens: this.settings.dailyTokens,
      maxTokens: this.settings.maxTokens
    };
    const server = ServerConnection.makeSettings();
    const url = URLExt.join(server.baseUrl, 'qfnb', 'inline-completions');
    let reply;
    try {
      reply = await ServerConnection.makeRequest(
        url, { method: 'POST', body: JSON.stringify(body), signal: controller.signal }, server);
    } catch (error) {
      return { items: [] }; // aborted, or the server is gone
    } finally {
      if (this._inFlight.get(key) === controller) {
        this._inFlight.delete(key);
      }
    }
    if (!reply.ok) {
      this._tell(`http-${reply.status}`, `qfnb inline completions: the Jupyter server answered HTTP ${reply.status}`);
      return { items: [] };
    }
    const data = await reply.json();
    if (data.notice && data.notice !== 'withdrawn') {
      this._tell(data.notice, String(data.message || data.notice));
    }
    // text only: the inline completer shows it as ghost text and inserts it as typed characters
    const items = (data.items || []).map(item => ({ insertText: String(item.insertText) }));
    return { items: items.filter(item => item.insertText) };
  }

  /** A notebook opened: the server loads the local coder model's engine and reads the notebook's
   * earlier cells into its cache ahead of the first suggestion (nothing for a cloud model). */
  async warm(panel) {
    if (this.settings.enabled === false) {
      return;
    }
    const { cells, executionCount } = notebookContext(panel);
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    const body = {
      cells,
      executionCount,
      kernel: kernel ? kernel.id : '',
      path: panel.context ? panel.context.path : '',
      model: this.settings.model || '',
      dailyTokens: this.settings.dailyTokens
    };
    const server = ServerConnection.makeSettings();
    const url = URLExt.join(server.baseUrl, 'qfnb', 'inline-completions', 'warm');
    try {
      await ServerConnection.makeRequest(url, { method: 'POST', body: JSON.stringify(body) }, server);
    } catch (error) {
      // the first suggestion loads the engine instead
    }
  }

  _tell(reason, message) {
    if (this._told.has(reason)) {
      return;
    }
    this._told.add(reason);
    Notification.warning(message, { autoClose: 8000 });
  }
}

export const completerPlugin = {
  id: 'qfnb-cell-magics:inline-completer',
  description: "Inline completions (ghost text) from qfnb's local coder model or a cloud model.",
  autoStart: true,
  requires: [ICompletionProviderManager],
  optional: [INotebookTracker],
  activate: (app, manager, notebooks) => {
    const provider = new QfnbInlineProvider();
    manager.registerInlineProvider(provider);
    if (notebooks) {
      // once its kernel is up (its names join the context), or at once when it has none
      notebooks.widgetAdded.connect((_, panel) => {
        panel.sessionContext.ready.then(() => provider.warm(panel), () => provider.warm(panel));
      });
      // a cell ran: its names and the cell itself are read ahead of the next cell's first suggestion
      // (once a burst of runs, such as Run All, is over)
      const timers = new Map();
      NotebookActions.executed.connect((_, { notebook }) => {
        const panel = notebooks.find(p => p.content === notebook);
        if (!panel) {
          return;
        }
        clearTimeout(timers.get(panel.id));
        timers.set(panel.id, setTimeout(() => { timers.delete(panel.id); provider.warm(panel); }, WARM_AFTER_RUN));
      });
    }
  }
};
