// qfnb's inline completions in JupyterLab 4 and Notebook 7: an inline completion provider for
// JupyterLab's own inline completer (ghost text; Tab accepts, Escape dismisses, Alt+[ / Alt+] cycle,
// its settings under "Inline Completer", where the qfnb provider is on by default and can be turned
// off). Each suggestion is asked of qfnb's Jupyter server extension (POST
// {base}/qfnb/inline-completions/stream, with the server's own token and XSRF header) and streamed:
// the first tokens show as ghost text while the rest is written. Only a code cell in the kernel's
// language is completed (a Markdown cell gets nothing). The server holds the model keys and the
// limits on spending; none is set by this page. A request the user has typed past is aborted, and
// the server withdraws it at the engine. A refusal (completions off, the daily cap, the notebook's
// budget, the rate) is said once per reason.

import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import {
  CompletionHandler,
  ICompletionProviderManager,
  IInlineCompletionContext,
  IInlineCompletionItem,
  IInlineCompletionList,
  IInlineCompletionProvider
} from '@jupyterlab/completer';
import { URLExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import type { ISettingRegistry } from '@jupyterlab/settingregistry';
import type { JSONValue } from '@lumino/coreutils';

import { notebookContext } from './context';

export const PROVIDER_ID = '@qfnb/inline-completer';
/** The server extension's routes below the Jupyter server's base URL. */
const ROUTE = ['qfnb', 'inline-completions'];
/** The server's notices the ghost text itself says (no notification). */
const QUIET_NOTICES = ['withdrawn', 'late', 'cut'];
/** ms after the last cell ran before the notebook's new context is read ahead. */
const WARM_AFTER_RUN = 500;

/** The provider's settings (with JupyterLab's own enabled, debouncerDelay and timeout). */
interface ISettings {
  enabled?: boolean;
  timeout: number;
  model: string;
  dailyTokens: number;
  maxTokens: number;
}

const DEFAULTS: ISettings & { debouncerDelay: number; autoFillInMiddle: boolean } = {
  debouncerDelay: 300,
  timeout: 20000,
  // text after the cursor (an auto-closed bracket) is the model's suffix, not a reason to wait
  autoFillInMiddle: true,
  model: '',
  dailyTokens: 0,
  maxTokens: 64
};

const SCHEMA: ISettingRegistry.IProperty = {
  default: DEFAULTS as unknown as JSONValue,
  properties: {
    model: {
      title: 'Model',
      description:
        "Empty: the local platform's coder model (Qwen2.5-Coder-0.5B). A local model's name, or " +
        "cloud:<model id> for a cloud model on a 2026 account (the server's QIANFAN_API_KEY).",
      type: 'string'
    },
    dailyTokens: {
      title: 'Daily token cap (lower only)',
      description:
        "0: the Jupyter server's cap (QfnbCompletions.daily_tokens). A lower number stops completions " +
        'sooner; a higher one changes nothing: the server holds the cap.',
      type: 'number',
      multipleOf: 1,
      minimum: 0
    },
    maxTokens: {
      title: 'Longest suggestion (tokens)',
      type: 'number',
      multipleOf: 1,
      minimum: 1,
      maximum: 256
    }
  }
};

/** One line of the server's stream. */
interface IStreamEvent {
  text?: string;
  done?: boolean;
  model?: string;
  notice?: string;
  message?: string;
}

/** Lines of JSON read from a response body as they arrive. */
class EventReader {
  private _buffer = '';
  private readonly _decoder = new TextDecoder();

  constructor(private readonly _reader: ReadableStreamDefaultReader<Uint8Array>) {}

  /** The next event, or null at the end of the body. */
  async next(): Promise<IStreamEvent | null> {
    for (;;) {
      const newline = this._buffer.indexOf('\n');
      if (newline >= 0) {
        const line = this._buffer.slice(0, newline);
        this._buffer = this._buffer.slice(newline + 1);
        if (line.trim()) {
          return JSON.parse(line) as IStreamEvent;
        }
        continue;
      }
      const { done, value } = await this._reader.read();
      if (done) {
        return null;
      }
      this._buffer += this._decoder.decode(value, { stream: true });
    }
  }

  cancel(): void {
    void this._reader.cancel().catch(() => undefined);
  }
}

export class QfnbInlineProvider implements IInlineCompletionProvider {
  readonly name = 'qfnb';
  readonly identifier = PROVIDER_ID;
  readonly schema = SCHEMA;
  settings: ISettings = { ...DEFAULTS };
  /** widget id -> the AbortController of its request in flight */
  private readonly _inFlight = new Map<string, AbortController>();
  /** stream token -> the rest of its suggestion */
  private readonly _streams = new Map<string, EventReader>();
  /** the refusals already said */
  private readonly _told = new Set<string>();
  private _tokens = 0;

  configure(settings: { [property: string]: JSONValue }): void {
    this.settings = { ...this.settings, ...(settings as unknown as Partial<ISettings>) };
  }

  async fetch(
    request: CompletionHandler.IRequest,
    context: IInlineCompletionContext
  ): Promise<IInlineCompletionList<IInlineCompletionItem>> {
    const widget = context.widget;
    const key = widget ? widget.id : '';
    this._inFlight.get(key)?.abort(); // typed past: the server withdraws it and the engine stops
    const controller = new AbortController();
    this._inFlight.set(key, controller);
    const notebook = notebookContext(widget, request.mimeType);
    if (notebook.cellType !== 'code' || notebook.language !== 'python') {
      return { items: [] }; // a Markdown cell, a prose magic, another language: nothing
    }
    const body = {
      ...notebook,
      prefix: request.text.slice(0, request.offset),
      suffix: request.text.slice(request.offset),
      kernel: context.session?.kernel?.id ?? '',
      path: (widget as NotebookPanel | undefined)?.context?.path ?? '',
      model: this.settings.model || '',
      maxTokens: this.settings.maxTokens,
      timeout: this.settings.timeout,
      ...(this.settings.dailyTokens > 0 ? { dailyTokens: this.settings.dailyTokens } : {})
    };
    let events: EventReader;
    let first: IStreamEvent | null;
    try {
      const reply = await this._post([...ROUTE, 'stream'], body, controller.signal);
      if (!reply.ok || !reply.body) {
        this._tell(`http-${reply.status}`, `qfnb inline completions: the Jupyter server answered HTTP ${reply.status}`);
        return { items: [] };
      }
      events = new EventReader(reply.body.getReader());
      first = await events.next();
    } catch {
      this._forget(key, controller);
      return { items: [] }; // aborted, or the server is gone
    }
    if (!first || first.done) {
      this._forget(key, controller);
      return { items: this._items(first) };
    }
    const token = `qfnb-${++this._tokens}`;
    this._streams.set(token, events);
    return { items: [{ insertText: String(first.text ?? ''), isIncomplete: true, token }] };
  }

  /** The rest of a streamed suggestion: the whole text so far, as the server writes it. */
  async *stream(token: string): AsyncGenerator<{ response: IInlineCompletionItem }> {
    const events = this._streams.get(token);
    this._streams.delete(token);
    if (!events) {
      return;
    }
    let text = '';
    try {
      for (let event = await events.next(); event; event = await events.next()) {
        if (event.done) {
          this._notice(event);
          text = String(event.text ?? text);
          yield { response: { insertText: text, isIncomplete: false, token } };
          return;
        }
        text = String(event.text ?? '');
        yield { response: { insertText: text, isIncomplete: true, token } };
      }
    } catch {
      // aborted: the user typed on
    } finally {
      events.cancel();
    }
  }

  /** A notebook opened: the server loads the local coder model's engine and reads the notebook's
   * earlier cells into its cache ahead of the first suggestion (nothing for a cloud model). */
  async warm(panel: NotebookPanel): Promise<void> {
    if (this.settings.enabled === false) {
      return;
    }
    const { cells, executionCount } = notebookContext(panel);
    const body = {
      cells,
      executionCount,
      kernel: panel.sessionContext.session?.kernel?.id ?? '',
      path: panel.context?.path ?? '',
      model: this.settings.model || ''
    };
    try {
      await this._post([...ROUTE, 'warm'], body);
    } catch {
      // the first suggestion loads the engine instead
    }
  }

  private _post(route: string[], body: object, signal?: AbortSignal): Promise<Response> {
    const server = ServerConnection.makeSettings();
    const url = URLExt.join(server.baseUrl, ...route);
    return ServerConnection.makeRequest(url, { method: 'POST', body: JSON.stringify(body), signal }, server);
  }

  private _items(event: IStreamEvent | null): IInlineCompletionItem[] {
    if (!event) {
      return [];
    }
    this._notice(event);
    // text only: the inline completer shows it as ghost text and inserts it as typed characters
    const text = String(event.text ?? '');
    return text ? [{ insertText: text }] : [];
  }

  private _notice(event: IStreamEvent): void {
    // withdrawn (typed past), late (nothing in time) and cut (what showed in time is the suggestion): said by the ghost text
    if (event.notice && !QUIET_NOTICES.includes(event.notice)) {
      this._tell(event.notice, String(event.message || event.notice));
    }
  }

  private _forget(key: string, controller: AbortController): void {
    if (this._inFlight.get(key) === controller) {
      this._inFlight.delete(key);
    }
  }

  private _tell(reason: string, message: string): void {
    if (this._told.has(reason)) {
      return;
    }
    this._told.add(reason);
    Notification.warning(message, { autoClose: 8000 });
  }
}

export const completerPlugin: JupyterFrontEndPlugin<void> = {
  id: 'qfnb-cell-magics:inline-completer',
  description: "Inline completions (ghost text) from qfnb's local coder model or a cloud model.",
  autoStart: true,
  requires: [ICompletionProviderManager],
  optional: [INotebookTracker],
  activate: (app: JupyterFrontEnd, manager: ICompletionProviderManager, notebooks: INotebookTracker | null) => {
    const provider = new QfnbInlineProvider();
    manager.registerInlineProvider(provider);
    if (!notebooks) {
      return;
    }
    // once its kernel is up (its names join the context), or at once when it has none
    notebooks.widgetAdded.connect((_, panel) => {
      panel.sessionContext.ready.then(
        () => provider.warm(panel),
        () => provider.warm(panel)
      );
    });
    // a cell ran: its names and the cell itself are read ahead of the next cell's first suggestion
    // (once a burst of runs, such as Run All, is over)
    const timers = new Map<string, ReturnType<typeof setTimeout>>();
    NotebookActions.executed.connect((_, { notebook }) => {
      const panel = notebooks.find(p => p.content === notebook);
      if (!panel) {
        return;
      }
      clearTimeout(timers.get(panel.id));
      timers.set(
        panel.id,
        setTimeout(() => {
          timers.delete(panel.id);
          void provider.warm(panel);
        }, WARM_AFTER_RUN)
      );
    });
  }
};
