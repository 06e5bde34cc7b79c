// What the editor knows of the notebook behind a completion: its earlier code cells, the highest
// execution count (it changes when a cell ran: the kernel's names are asked again), the active
// cell's type and the kernel's language.

import type { NotebookPanel } from '@jupyterlab/notebook';
import type { Widget } from '@lumino/widgets';

/** Earlier cells sent as context at most (the server keeps what fits its token budget). */
const MAX_CELLS = 60;
const MAX_CHARS = 60000;
/** The MIME types of the code the server completes (the kernel's Python). */
const CODE_MIMES = ['text/x-ipython', 'text/x-python'];

/** A notebook's context for one completion. */
export interface INotebookContext {
  cells: string[];
  executionCount: number;
  cellType: 'code' | 'markdown' | 'raw';
  language: string;
}

/** Whether `widget` is a notebook panel (a console or a file editor is not). */
export function isNotebook(widget: Widget | null | undefined): widget is NotebookPanel {
  const content = (widget as NotebookPanel | null | undefined)?.content;
  return !!content && Array.isArray(content.widgets) && typeof content.activeCellIndex === 'number';
}

/** The language of the code under the cursor, from its MIME type (`python` for the kernel's
 * Python, `markdown` for a Markdown cell or a prose cell magic, else the MIME type itself). */
export function languageOf(mimeType: string | undefined): string {
  if (!mimeType || CODE_MIMES.includes(mimeType)) {
    return 'python';
  }
  if (mimeType.includes('gfm') || mimeType.includes('markdown')) {
    return 'markdown';
  }
  return mimeType;
}

/** The earlier code cells of `widget`'s notebook (none for a console or a file editor), its
 * highest execution count, the active cell's type and the language under the cursor. */
export function notebookContext(widget: Widget | null | undefined, mimeType?: string): INotebookContext {
  const language = languageOf(mimeType);
  if (!isNotebook(widget)) {
    return { cells: [], executionCount: 0, cellType: 'code', language };
  }
  const notebook = widget.content;
  const cells: string[] = [];
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
      const count = (cell.model as { executionCount?: number | null }).executionCount;
      executionCount = Math.max(executionCount, count || 0);
    }
  }
  const active = notebook.activeCell?.model.type ?? 'code';
  const cellType = active === 'markdown' || active === 'raw' ? active : 'code';
  return { cells, executionCount, cellType, language };
}
