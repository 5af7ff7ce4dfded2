import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'etl_nb:panel',
  autoStart: true,
  activate: (_app: JupyterFrontEnd) => undefined
};

export default plugin;
