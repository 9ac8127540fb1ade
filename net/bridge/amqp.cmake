# troupe::bridge_amqp — a RabbitMQ source and sink over AMQP 0-9-1 on
# rabbitmq-c (Debian: librabbitmq-dev, found with pkg-config as `librabbitmq`).
# A component of its own, so only users who speak AMQP pull librabbitmq in:
# find_package(troupe COMPONENTS bridge bridge_amqp). Included from
# net/bridge/CMakeLists.txt.
if(TROUPE_WITH_AMQP)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(RABBITMQ QUIET librabbitmq)
  endif()
  if(RABBITMQ_FOUND)
    troupe_add_library(bridge_amqp
      SOURCES
        src/amqp_session.cpp
        src/amqp.cpp
        src/amqp_sink.cpp
      DEPENDS troupe::bridge troupe::runtime
      COMPONENT bridge_amqp)
    # Private: the public header amqp.hpp does not include rabbitmq-c's. By full
    # path rather than pkg-config's imported target, so the installed package
    # names the library itself and find_package needs no pkg-config.
    target_include_directories(troupe_bridge_amqp PRIVATE ${RABBITMQ_INCLUDE_DIRS})
    target_link_libraries(troupe_bridge_amqp PRIVATE ${RABBITMQ_LINK_LIBRARIES})
  else()
    message(WARNING "troupe: librabbitmq not found by pkg-config (Debian: librabbitmq-dev, or run scripts/deps): "
                    "building without troupe::bridge_amqp. -DTROUPE_WITH_AMQP=OFF silences this.")
  endif()
endif()
