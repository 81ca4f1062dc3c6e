import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The bytes of the file at `path` (named on the command line), or an error that says why
/// they cannot be read: the system's reason, or that the path is a folder.
func contentsOfFile(_ path: String) throws -> Data {
    var isFolder: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
        throw ValidationError("cannot read \(path): it is a folder")
    }
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw ValidationError("cannot read \(path): \(String(cString: strerror(errno)))") }
    close(fd)
    guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
    return data
}
