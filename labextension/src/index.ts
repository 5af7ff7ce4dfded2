/**
 * etl_nb's JupyterLab plugin: the "ETL pipelines" sidebar (widget id
 * `etl-nb-panel`, restored across reloads), a command to run the current
 * notebook as a recorded pipeline, and a notebook toolbar button for it on
 * notebooks with `%etl` cells.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, IThemeManager, Notification, ToolbarButton } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { INotebookModel, INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';

import { EtlNbClient, Requester } from './client';
import { hasEtlCells } from './model';
import { EtlPipelinesPanel } from './panel';

const PANEL_ID = 'etl-nb-panel';
const API_ROOT = 'etl-nb/api';

namespace CommandIDs {
  export const runNotebook = 'etl-nb:run-notebook';
  export const refresh = 'etl-nb:refresh';
  export const open = 'etl-nb:open-panel';
}

/** A small DAG glyph for the sidebar tab and the toolbar button. */
const etlIcon = new LabIcon({
  name: 'etl_nb:pipeline',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><g class="jp-icon3" fill="#616161">' +
    '<rect x="2" y="3" width="8" height="5" rx="1"/><rect x="14" y="3" width="8" height="5" rx="1"/>' +
    '<rect x="8" y="16" width="8" height="5" rx="1"/>' +
    '<path d="M6 8v3.5h12V8h-1.5v2h-9V8zM11.25 11h1.5v5h-1.5z"/></g></svg>'
});

function makeRequester(settings: ServerConnection.ISettings): Requester {
  return (path, init) =>
    ServerConnection.makeRequest(URLExt.join(settings.baseUrl, API_ROOT, path), init, settings);
}

function notebookSources(panel: NotebookPanel): string[] {
  const cells = panel.content.model?.cells;
  const sources: string[] = [];
  if (cells) {
    for (let i = 0; i < cells.length; i++) {
      sources.push(cells.get(i).sharedModel.getSource());
    }
  }
  return sources;
}

/** The Run button in the toolbar of notebooks that declare `%etl` steps. */
class RunButtonExtension implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel> {
  constructor(private readonly run: (panel: NotebookPanel) => void) {}

  createNew(panel: NotebookPanel, context: DocumentRegistry.IContext<INotebookModel>): IDisposable {
    const button = new ToolbarButton({
      className: 'etl-nb-toolbar-run',
      icon: etlIcon,
      label: 'Run pipeline',
      tooltip: 'Run this notebook as a recorded ETL pipeline (saves it first)',
      onClick: () => this.run(panel)
    });
    const update = () => button.setHidden(!hasEtlCells(notebookSources(panel)));
    let pending: ReturnType<typeof setTimeout> | null = null;
    const soon = () => {
      if (pending === null) {
        pending = setTimeout(() => {
          pending = null;
          update();
        }, 500);
      }
    };
    void context.ready.then(update);
    context.model.contentChanged.connect(soon);
    update();
    panel.toolbar.insertItem(10, 'etlNbRun', button);
    return new DisposableDelegate(() => {
      context.model.contentChanged.disconnect(soon);
      button.dispose();
    });
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'etl_nb:panel',
  description: 'The ETL pipelines sidebar: pipelines, their DAG, runs and a Run button.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, ICommandPalette, IThemeManager],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    themes: IThemeManager | null
  ) => {
    const settings = ServerConnection.makeSettings();
    const client = new EtlNbClient(makeRequester(settings));
    const panel = new EtlPipelinesPanel({
      client,
      openNotebook: path => void app.commands.execute('docmanager:open', { path }),
      apiUrl: path => URLExt.join(settings.baseUrl, API_ROOT, path),
      isLight: () => !themes?.theme || themes.isLight(themes.theme)
    });
    panel.id = PANEL_ID;
    panel.title.icon = etlIcon;
    panel.title.caption = 'ETL pipelines';
    app.shell.add(panel, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(panel, PANEL_ID);
    }

    const runNotebook = async (notebook: NotebookPanel | null) => {
      if (!notebook) {
        return;
      }
      if (notebook.context.model.dirty) {
        await notebook.context.save();
      }
      const path = app.serviceManager.contents.localPath(notebook.context.path);
      app.shell.activateById(PANEL_ID);
      const id = await panel.startRun(path);
      if (id) {
        Notification.info(`Started recorded run ${id} of ${path}.`, { autoClose: 4000 });
      } else {
        Notification.error(`Could not start a run of ${path}: see the ETL pipelines panel.`, {
          autoClose: 6000
        });
      }
    };

    app.commands.addCommand(CommandIDs.runNotebook, {
      label: 'Run Notebook as Recorded ETL Pipeline',
      caption: 'Save the current notebook and run it with papermill as one recorded pipeline run',
      icon: etlIcon,
      isEnabled: () => !!tracker.currentWidget && hasEtlCells(notebookSources(tracker.currentWidget)),
      execute: () => runNotebook(tracker.currentWidget)
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh ETL Pipelines',
      execute: () => panel.refresh()
    });
    app.commands.addCommand(CommandIDs.open, {
      label: 'Show ETL Pipelines',
      execute: () => app.shell.activateById(PANEL_ID)
    });
    if (palette) {
      for (const command of [CommandIDs.runNotebook, CommandIDs.refresh, CommandIDs.open]) {
        palette.addItem({ command, category: 'ETL pipelines' });
      }
    }
    app.docRegistry.addWidgetExtension('Notebook', new RunButtonExtension(panel => void runNotebook(panel)));
    tracker.currentChanged.connect(() => app.commands.notifyCommandChanged(CommandIDs.runNotebook));
  }
};

export default plugin;
