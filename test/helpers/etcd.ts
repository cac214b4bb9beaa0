// A real etcd on free loopback ports, from the local-cluster launcher the demo uses too.
export * from '../../services/local/etcd';
