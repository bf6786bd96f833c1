export * from './chart-data';
export * from './kube-cluster';
export * from './dockerfile-lint';
