/** Every command id in one place (package.json contributes the same ids). */
export enum Command {
  Analyze = 'headlens.analyze',
  LoadModel = 'headlens.loadModel',
  ShowExplorer = 'headlens.showExplorer',
  Train = 'headlens.train',
  StopTraining = 'headlens.stopTraining',
  ClearAnnotations = 'headlens.clearAnnotations',
  Export = 'headlens.export',
  InstallGpu = 'headlens.installGpuBackend',
  InstallNative = 'headlens.installNativeRuntime',
  ChooseColorMetric = 'headlens.chooseColorMetric',
  OpenExplorerAt = 'headlens.openExplorerAt',
}
