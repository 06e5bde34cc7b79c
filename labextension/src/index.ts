// qfnb's prose cell magics in JupyterLab 4 and Notebook 7: a code cell whose first line is
// `%%qfchat ...` or `%%qfimage ...` holds a prompt, not Python, so its editor is given the
// Markdown language of Markdown cells (an apostrophe no longer opens a Python string). JupyterLab's
// own CodeMirror 6 setup highlights every code cell in the kernel's language (its `ipython`
// language is plain Python, without IPython 7's cell-magic modes), so the cell model's MIME type
// is what changes here: the editor follows it, and the notebook's own reset on a kernel change
// is followed by the same choice again, once the editor has applied the reset.

import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import type { ICellModel } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { completerPlugin } from './completer';

/** The cell magics whose bodies are prose (tests/notebook/test_nb_browser_cell_magics.py keeps this
 * list equal to qfnb's registered cell magics). */
export const PROSE_MAGICS = ['qfchat', 'qfimage'];
/** JupyterLab's Markdown-cell language (GitHub Markdown with LaTeX math). */
export const PROSE_MIME = 'text/x-ipythongfm';
const FIRST_LINE = new RegExp(`^%%(${PROSE_MAGICS.join('|')})(?=\\s|$)`);

/** Whether a code cell's source is a prose magic's cell. */
export function isProse(source: string): boolean {
  return FIRST_LINE.test(source);
}

const followed = new WeakSet<ICellModel>();

/** Keep one code cell model's MIME type on Markdown while its source is a prose magic's. */
function follow(model: ICellModel, languages: IEditorLanguageRegistry): void {
  if (model.type !== 'code' || followed.has(model)) {
    return;
  }
  followed.add(model);
  let kernelMime = model.mimeType === PROSE_MIME ? '' : model.mimeType;
  const apply = () => {
    const want = isProse(model.sharedModel.getSource()) ? PROSE_MIME : kernelMime;
    if (want && model.mimeType !== want) {
      model.mimeType = want;
    }
  };
  model.mimeTypeChanged.connect((_, change) => {
    if (change.newValue !== PROSE_MIME) {
      kernelMime = change.newValue; // the notebook's choice for its code cells
    }
    // the editor applies each language when it has loaded, in the order the loads end: the choice
    // here is made once the language just set is in, so the last one applied is this one
    languages.getLanguage(change.newValue).then(apply, apply);
  });
  model.sharedModel.changed.connect((_, change) => {
    if (change.sourceChange) {
      apply();
    }
  });
  apply();
}

function watch(panel: NotebookPanel, languages: IEditorLanguageRegistry): void {
  const attach = () => {
    const cells = panel.content.model?.cells;
    if (!cells) {
      return;
    }
    for (let i = 0; i < cells.length; i++) {
      follow(cells.get(i), languages);
    }
    cells.changed.connect((_, change) => {
      if (change.type === 'add' || change.type === 'set') {
        change.newValues.forEach(model => follow(model, languages));
      }
    });
  };
  void panel.context.ready.then(attach);
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'qfnb-cell-magics:plugin',
  description: "Highlights the bodies of qfnb's prose cell magics (%%qfchat, %%qfimage) as Markdown.",
  autoStart: true,
  requires: [INotebookTracker, IEditorLanguageRegistry],
  activate: (app: JupyterFrontEnd, notebooks: INotebookTracker, languages: IEditorLanguageRegistry) => {
    notebooks.forEach(panel => watch(panel, languages));
    notebooks.widgetAdded.connect((_, panel) => watch(panel, languages));
  }
};

export default [plugin, completerPlugin] as JupyterFrontEndPlugin<void>[];
