// The on-call page's files (admin/page/), compiled into the binary: GET / and
// the script and style it loads. No build step; CMake embeds the files as
// they are.
#pragma once

#include <optional>
#include <string_view>

namespace bgs::admin {

struct PageFile {
    std::string_view body;
    std::string_view content_type;
};

/// The page file served at `path` ("/", "/ui/app.js", "/ui/app.css"), if any.
std::optional<PageFile> page_file(std::string_view path);

}  // namespace bgs::admin
