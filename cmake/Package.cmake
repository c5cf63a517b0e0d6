# `make deb`: the install components become two Debian packages with CPack.
#   choria              the choria command, choria-server.service, choria-broker.service
#   choria-provisioner  the daemon, its helpers, choria-provisioner.service, dashboard, rules
# Library dependencies are computed by dpkg-shlibdeps from the binaries.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME choria)
set(CPACK_PACKAGE_VENDOR "choria-c")
set(CPACK_PACKAGE_CONTACT "choria-c developers <choria-c@users.noreply.github.com>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL choria choria-provisioner)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://choria.io")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)

set(CPACK_DEBIAN_CHORIA_PACKAGE_NAME choria)
string(CONCAT CPACK_DEBIAN_CHORIA_DESCRIPTION
       "Choria server, broker, election and provisioning tools (C implementation)\n"
       "The choria command: a Choria server that starts in provisioning mode, a Choria broker\n"
       "(a supervised nats-server with Choria's accounts), leader election tools, the\n"
       "lifecycle event viewer and a simulated fleet. Speaks go-choria's wire protocol.")
# nats-server only for `choria broker run`; adduser creates the service user.
set(CPACK_DEBIAN_CHORIA_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_CHORIA_PACKAGE_RECOMMENDS "nats-server")

set(CPACK_DEBIAN_CHORIA-PROVISIONER_PACKAGE_NAME choria-provisioner)
string(CONCAT CPACK_DEBIAN_CHORIA-PROVISIONER_DESCRIPTION
       "Choria zero-touch provisioner (C implementation)\n"
       "Finds Choria servers in provisioning mode, asks a helper program for their\n"
       "configuration and certificate, then configures and restarts them. A drop-in for\n"
       "choria-io/provisioner, with leader election, Prometheus metrics, a Grafana dashboard\n"
       "and alerting rules.")
set(CPACK_DEBIAN_CHORIA-PROVISIONER_PACKAGE_DEPENDS
    "choria (= ${PROJECT_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE})")
# openssl for the openssl-ca-helper; logrotate only when logging to a file.
set(CPACK_DEBIAN_CHORIA-PROVISIONER_PACKAGE_RECOMMENDS "openssl")
set(CPACK_DEBIAN_CHORIA-PROVISIONER_PACKAGE_SUGGESTS "logrotate, prometheus, grafana")

# Maintainer scripts: the service user, configuration directories, and the units enabled but
# not started (Debian policy 9.3.3; the units do nothing until configured).
function(ch_deb_scripts component units config_dirs conffiles)
  set(CH_PKG ${component})
  set(CH_PKG_UNITS "${units}")
  set(CH_PKG_CONFIG_DIRS "${config_dirs}")
  set(dir ${CMAKE_BINARY_DIR}/debian/${component})
  foreach(script postinst prerm postrm)
    configure_file(${CMAKE_SOURCE_DIR}/contrib/packaging/${script}.in ${dir}/${script} @ONLY
                   FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                   GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  endforeach()
  set(extra ${dir}/postinst ${dir}/prerm ${dir}/postrm)
  if(conffiles)
    string(REPLACE ";" "\n" lines "${conffiles}")
    file(WRITE ${dir}/conffiles "${lines}\n")
    list(APPEND extra ${dir}/conffiles)
  endif()
  string(TOUPPER ${component} upper)
  set(CPACK_DEBIAN_${upper}_PACKAGE_CONTROL_EXTRA "${extra}" PARENT_SCOPE)
endfunction()

ch_deb_scripts(choria "choria-server.service choria-broker.service"
               "config_dir ${CH_SYSCONFDIR}/choria root 0755" "")
ch_deb_scripts(choria-provisioner "choria-provisioner.service"
               "config_dir ${CH_SYSCONFDIR}/choria-provisioner choria 0750"
               "${CH_SYSCONFDIR}/default/choria-provisioner;${CH_SYSCONFDIR}/logrotate.d/choria-provisioner")

include(CPack)
