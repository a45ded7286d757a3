/// Loads Kubernetes objects from a directory of YAML files (the offline source).
public enum FileSource {}
